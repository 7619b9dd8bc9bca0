import type { DamnitDb } from '../db/database.js';
import type { OutputSink, RunExecutor } from '../executors/executor.js';
import type { RunOutcome, RunRequest } from './run-request.js';

/**
 * Runs the context for one run and records what it computed: one SQLite transaction, only once
 * the run has finished and its HDF5 file is in place. A run that fails records nothing, so every
 * earlier result stays as it was. The one path every command (reprocess, listen) takes.
 */
export async function processRun(
  req: RunRequest,
  deps: { db: DamnitDb; executor: RunExecutor; onOutput?: OutputSink },
): Promise<RunOutcome> {
  const outcome = await deps.executor.execute(req, deps.onOutput);
  if (outcome.ok) {
    deps.db.recordRunResults(req.proposal, req.run, { startTime: outcome.startTime, variables: outcome.variables });
  }
  return outcome;
}

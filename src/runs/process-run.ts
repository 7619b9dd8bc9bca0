import type { VariableResultMessage } from '../context/protocol.js';
import type { DamnitDb } from '../db/database.js';
import type { DatabasePatience } from '../db/patience.js';
import type { OutputSink, RunEnvironment, RunExecutor } from '../executors/executor.js';
import { runClusterPart, withClusterPart, type ProcessedRun } from './cluster.js';
import type { RunRequest } from './run-request.js';
import { RunRecorder } from './run-recorder.js';

export type { ProcessedRun } from './cluster.js';

export interface ProcessRunDeps {
  db: DamnitDb;
  executor: RunExecutor;
  onOutput?: OutputSink;
  /** The settings the executor was made with; read from the database for a cluster job if not given. */
  env?: RunEnvironment;
  /** Told when a cluster job has been submitted for this run. */
  onClusterJob?: (jobId: string, logPath: string) => void;
  /** Cancels the run (`cancel`): its child is stopped (RunExecutor's ExecuteOptions.signal), a Slurm job for it cancelled. */
  signal?: AbortSignal;
  /**
   * Waits for a database another process holds locked (db/patience.ts); without it a locked
   * database fails the record at once. A record that gives up throws DatabaseBusyError, its
   * HDF5 file written, and is kept for the command to retry at its end.
   */
  patience?: DatabasePatience;
  /** Told once results are recorded (for the GUI's run_values_updated). */
  onRecorded?: (results: RecordedResults) => void;
}

/** What one record wrote for a run. */
export interface RecordedResults {
  variables: VariableResultMessage[];
  startTime: number | null;
}

/**
 * Runs the context for one run and records what it computed, each variable as the run stages
 * it for its HDF5 file (run-recorder.ts). A run stopped midway (time limit, kill, cancel) keeps
 * the variables it finished, and the one it was computing is recorded as an error saying why;
 * a run that fails before computing anything records nothing. The one path every command
 * (reprocess, listen) takes.
 *
 * With `cluster: 'include'`, cluster variables go to a Slurm job (runs/cluster.ts): the local
 * part runs first and is recorded, then the job computes the variables it left out and its
 * results are recorded in turn. The outcome is `ok` only if both parts went well; a failed
 * cluster part says why (job state, log file) in `reason`, and `cluster` has the details.
 */
export async function processRun(req: RunRequest, deps: ProcessRunDeps): Promise<ProcessedRun> {
  const { local, rest } = await startRun(req, deps);
  return rest ?? local;
}

/**
 * processRun in two steps, for callers that must not wait for a Slurm job in the meantime (the
 * listener frees its concurrency slot): returns once the local part is recorded, with the run's
 * whole outcome still to come in `rest` when cluster variables went to a job.
 */
export async function startRun(
  req: RunRequest,
  deps: ProcessRunDeps,
): Promise<
  | { local: Extract<ProcessedRun, { ok: true }>; rest: Promise<ProcessedRun> }
  | { local: ProcessedRun; rest?: undefined }
> {
  const splitCluster = req.cluster === 'include';
  const recorder = new RunRecorder(deps.db, req, deps.patience);
  const outcome = await deps.executor.execute(splitCluster ? { ...req, cluster: 'exclude' } : req, deps.onOutput, {
    onVariable: recorder.add,
    signal: deps.signal,
  });
  if (!outcome.ok) {
    await recorder.finish(outcome.variables ?? []);
    // What a stopped run finished is recorded all the same.
    if (outcome.variables?.length) deps.onRecorded?.({ variables: outcome.variables, startTime: null });
    return { local: outcome };
  }
  await recorder.finish(outcome.variables, outcome.startTime);
  deps.onRecorded?.(outcome);
  if (!splitCluster || outcome.clusterLeftOut.length === 0) return { local: outcome };
  return { local: outcome, rest: runClusterPart(req, deps).then((part) => withClusterPart(outcome, part)) };
}

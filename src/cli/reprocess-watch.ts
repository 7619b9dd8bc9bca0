/**
 * `reprocess --watch`: the runs one by one, each in a pseudo-terminal whose output (the
 * context's prints, progress bars, colours) goes straight to this terminal, as the reference's
 * --watch shows a job's output live. Results are recorded as in every other path (processRun).
 */
import { styleText } from 'node:util';
import type { DamnitDb } from '../db/database.js';
import { DatabaseBusyError } from '../db/errors.js';
import type { DatabasePatience } from '../db/patience.js';
import type { RunEnvironment } from '../executors/executor.js';
import { PtyExecutor } from '../executors/pty.js';
import { processRun, type ProcessedRun } from '../runs/process-run.js';
import { describeRun, type RunRequest } from '../runs/run-request.js';
import { noteOutcome } from '../runs/failure-record.js';
import { ProcessLog, processingHeader } from '../runs/process-log.js';
import { describeFailure, processingEnding, variableFailures } from '../runs/run-report.js';
import type { GuiUpdates } from '../updates/gui-updates.js';

export interface WatchOptions {
  db: DamnitDb;
  /** Waits for a database another process holds locked. */
  patience?: DatabasePatience;
  env: RunEnvironment;
  debug: boolean;
  /** Summary of a successful run, e.g. `11 variables, 1 error`. */
  describeResults: (outcome: Extract<ProcessedRun, { ok: true }>) => string;
  /** Where the runs' output goes; stdout by default. */
  out?: NodeJS.WriteStream;
  /** DAMNIT's GUI hears of each run. */
  updates?: GuiUpdates;
  /** Told once of a process log that cannot be written. */
  onProblem?: (message: string) => void;
}

/**
 * Runs `reqs` one after the other in a pty; returns how many went well and how many failed.
 * Ctrl-C (or SIGTERM) stops the run in progress and starts no other.
 */
export async function reprocessWatched(
  reqs: RunRequest[],
  opts: WatchOptions,
): Promise<{ ok: number; failed: number; interrupted: NodeJS.Signals | null }> {
  const out = opts.out ?? process.stdout;
  const colour = Boolean(out.isTTY) && process.env.TERM !== 'dumb';
  // The run's process log gets what the terminal gets, with plain line ends.
  let processLog: ProcessLog | null = null;
  let logProblemSaid = false;
  const executor = new PtyExecutor(opts.env, {
    write: (data) => {
      out.write(data);
      processLog?.write(data.replaceAll('\r\n', '\n'));
    },
    columns: out.columns,
    rows: out.rows,
  });
  const onResize = (): void => executor.resize(out.columns, out.rows);
  out.on('resize', onResize);
  let interrupted: NodeJS.Signals | null = null;
  const stop = (signal: NodeJS.Signals): void => {
    interrupted ??= signal;
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, stop);
  let ok = 0;
  let failed = 0;
  try {
    for (const req of reqs) {
      if (interrupted) break;
      const label = describeRun(req);
      out.write(`${colour ? styleText('bold', `--- ${label} ---`) : `--- ${label} ---`}\n`);
      const started = performance.now();
      processLog = ProcessLog.open(opts.db.dir, req.run, req.proposal, (m) => {
        // Said for the first run only: the same directory fails the others alike.
        if (!logProblemSaid) opts.onProblem?.(m);
        logProblemSaid = true;
      });
      processLog?.write(processingHeader(req.run, req.proposal));
      const processingId = opts.updates?.processingRunning({ proposal: req.proposal, run: req.run, data: req.runData });
      const outcome = await processRun(req, {
        db: opts.db,
        executor,
        env: opts.env,
        patience: opts.patience,
        onRecorded: (results) => opts.updates?.valuesRecorded(req.proposal, req.run, results),
      })
        .catch((err: unknown): ProcessedRun => {
          // The run's file is written; its rows are for the next reprocess, once the lock is gone.
          if (err instanceof DatabaseBusyError) return { ok: false, reason: `computed, not recorded: ${err.message}` };
          throw err;
        })
        .finally(() => {
          if (processingId !== undefined) opts.updates?.processingFinished(processingId);
        });
      processLog?.write(processingEnding(outcome, (performance.now() - started) / 1000));
      processLog?.close();
      processLog = null;
      noteOutcome(opts.db.connection, req.proposal, req.run, req.runData, outcome);
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      if (outcome.ok) {
        ok += 1;
        out.write(`${label}: done in ${seconds} s: ${opts.describeResults(outcome)}\n`);
        for (const failure of variableFailures(outcome.variables)) out.write(`${describeFailure(failure, req.run)}\n`);
      } else {
        failed += 1;
        const status = colour ? styleText('red', 'FAILED') : 'FAILED';
        out.write(`${label}: ${status} in ${seconds} s: ${interrupted ? `interrupted (${interrupted})` : outcome.reason}\n`);
        if (opts.debug && outcome.detail) out.write(`${outcome.detail}\n`);
      }
    }
  } finally {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) process.off(signal, stop);
    out.off('resize', onResize);
    await executor.close();
  }
  return { ok, failed, interrupted };
}

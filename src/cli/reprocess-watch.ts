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
  const executor = new PtyExecutor(opts.env, {
    write: (data) => out.write(data),
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
      const outcome = await processRun(req, { db: opts.db, executor, env: opts.env, patience: opts.patience }).catch(
        (err: unknown): ProcessedRun => {
          // The run's file is written; its rows are for the next reprocess, once the lock is gone.
          if (err instanceof DatabaseBusyError) return { ok: false, reason: `computed, not recorded: ${err.message}` };
          throw err;
        },
      );
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      if (outcome.ok) {
        ok += 1;
        out.write(`${label}: done in ${seconds} s: ${opts.describeResults(outcome)}\n`);
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

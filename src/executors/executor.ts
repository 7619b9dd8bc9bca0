import type { OutputStream } from '../context/shim-process.js';
import type { DatabaseDir } from '../database-dir.js';
import type { RunOutcome, RunRequest } from '../runs/run-request.js';

/** What every way of running a context for a run needs to know, resolved once per command. */
export interface RunEnvironment {
  dir: DatabaseDir;
  /** The probed context_python. */
  python: string;
  proposalPath: string;
  /** Per-run time limit (`run_timeout`). */
  timeoutMs: number;
  /** `mymdc_source` setting: where mymdc# annotations get their values. */
  mymdcSource: string | null;
}

export type OutputSink = (stream: OutputStream, line: string) => void;

/**
 * Runs the context for one run and reports what it computed; records nothing. Implementations:
 * a fresh interpreter per run (local.ts) and warm workers.
 */
export interface RunExecutor {
  /**
   * `signal` cancels the run: its child is stopped as the run time limit stops it, and the
   * outcome is a failure whose reason is the signal's reason (a string).
   */
  execute(req: RunRequest, onOutput?: OutputSink, signal?: AbortSignal): Promise<RunOutcome>;
  /** Stops whatever the executor keeps running between runs. */
  close(): Promise<void>;
}

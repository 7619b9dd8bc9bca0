import type { VariableResultMessage } from '../context/protocol.js';
import type { OutputStream } from '../context/shim-process.js';
import type { DatabaseDir } from '../database-dir.js';
import type { RunOutcome, RunRequest } from '../runs/run-request.js';

/** What every way of running a context for a run needs to know, resolved once per command. */
export interface RunEnvironment {
  dir: DatabaseDir;
  /** The probed context_python. */
  python: string;
  proposalPath: string;
  /** Per-run time limit (`run_timeout`, else `slurm_time`: runs/time-limit.ts). */
  timeoutMs: number;
  /** The setting the time limit comes from, for messages; `run_timeout` when not given. */
  timeLimitSetting?: 'run_timeout' | 'slurm_time';
  /** `mymdc_source` setting: where mymdc# annotations get their values. */
  mymdcSource: string | null;
  /**
   * `run_memory_limit`: GB, or 'auto' (half of the memory of the machine the run runs on);
   * absent or 0: no limit.
   */
  memoryLimit?: number | 'auto';
}

export type OutputSink = (stream: OutputStream, line: string) => void;

export interface ExecuteOptions {
  /** Each variable's result as soon as the run has staged it for its HDF5 file. */
  onVariable?: (result: VariableResultMessage) => void;
  /**
   * Stops the run (a cancel): it fails with the signal's reason (a string) as its own and as
   * the error of the variable it was computing; the variables it finished are kept.
   */
  signal?: AbortSignal;
}

/** Why a run was cancelled through ExecuteOptions.signal. */
export function cancelReason(signal: AbortSignal): string {
  return typeof signal.reason === 'string' ? signal.reason : 'the run was cancelled';
}

/**
 * Runs the context for one run and reports what it computed; records nothing. A run that
 * stops midway keeps what it finished (salvage.ts). Implementations: a fresh interpreter per
 * run (local.ts), warm workers (warm-worker.ts), a terminal (pty.ts).
 */
export interface RunExecutor {
  execute(req: RunRequest, onOutput?: OutputSink, opts?: ExecuteOptions): Promise<RunOutcome>;
  /** Stops whatever the executor keeps running between runs. */
  close(): Promise<void>;
}

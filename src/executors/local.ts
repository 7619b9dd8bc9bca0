/**
 * Runs a context for one run on this machine: one shim process (`damnit_shim.py run`) that
 * computes the variables and writes the run's HDF5 file, streaming a message per variable.
 * Nothing is recorded here: the caller records the outcome in SQLite only when the run finished,
 * so a run that dies leaves every earlier result as it was.
 */
import type { VariableResultMessage } from '../context/protocol.js';
import { ShimError, startShim, type OutputStream } from '../context/shim-process.js';
import type { DatabaseDir } from '../database-dir.js';
import type { RunOutcome, RunRequest } from '../runs/run-request.js';

export interface LocalRunOptions {
  dir: DatabaseDir;
  python: string;
  proposalPath: string;
  timeoutMs: number;
  /** `mymdc_source` setting: where mymdc# annotations get their values. */
  mymdcSource: string | null;
  onOutput?: (stream: OutputStream, line: string) => void;
}

export function runnerArgs(req: RunRequest, opts: Omit<LocalRunOptions, 'python' | 'timeoutMs' | 'onOutput'>): string[] {
  const args = [
    opts.dir.contextFile,
    '--proposal', String(req.proposal),
    '--run', String(req.run),
    '--run-data', req.runData,
    '--proposal-path', opts.proposalPath,
    '--out', opts.dir.runDataFile(req.proposal, req.run),
    '--cluster', req.cluster,
  ];
  if (req.mock) args.push('--mock');
  for (const m of req.match) args.push('--match', m);
  if (opts.mymdcSource) args.push('--mymdc-source', opts.mymdcSource);
  return args;
}

export async function runLocally(req: RunRequest, opts: LocalRunOptions): Promise<RunOutcome> {
  const shim = startShim({
    python: opts.python,
    command: 'run',
    args: runnerArgs(req, opts),
    cwd: opts.dir.root,
    timeoutMs: opts.timeoutMs,
    onOutput: opts.onOutput,
    finalKinds: ['run_finished', 'fatal'],
  });
  const variables: VariableResultMessage[] = [];
  try {
    for await (const message of shim.messages) {
      switch (message.kind) {
        case 'variable_result':
          variables.push(message);
          break;
        case 'run_finished':
          await shim.exited;
          return { ok: true, startTime: message.start_time, variables, h5Path: message.h5_path };
        case 'fatal':
          await shim.exited;
          return { ok: false, reason: message.message, detail: message.traceback ?? undefined };
        default:
          break;
      }
    }
    return { ok: false, reason: 'the Python shim ended without a result' };
  } catch (err) {
    shim.kill();
    await shim.exited;
    if (err instanceof ShimError) {
      const reason =
        err.reason === 'timeout'
          ? `stopped after the run time limit of ${opts.timeoutMs / 1000} s (db-config run_timeout)`
          : err.message;
      return { ok: false, reason, detail: err.stderrTail || undefined };
    }
    throw err;
  }
}

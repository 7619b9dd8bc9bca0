/**
 * Runs a context for one run in a fresh interpreter: one shim process (`damnit_shim.py run`)
 * that computes the variables and writes the run's HDF5 file, streaming a message per variable.
 * This is the reference backend's model; it pays Python's start-up and imports on every run.
 */
import { ShimError, startShim } from '../context/shim-process.js';
import { outcomeOf, type RunOutcome, type RunRequest } from '../runs/run-request.js';
import { timeLimitReason as timeLimitText } from '../runs/time-limit.js';
import { cancelReason, type ExecuteOptions, type OutputSink, type RunEnvironment, type RunExecutor } from './executor.js';
import { keepWhatFinished, RunProgress } from './salvage.js';

/** The shim's `run` arguments for a request (python-shim/_damnit_shim/runner.py). */
export function runnerArgs(req: RunRequest, env: RunEnvironment): string[] {
  const args = [
    env.dir.contextFile,
    '--proposal', String(req.proposal),
    '--run', String(req.run),
    '--run-data', req.runData,
    '--proposal-path', env.proposalPath,
    '--out', env.dir.runDataFile(req.proposal, req.run),
    '--cluster', req.cluster,
  ];
  if (req.mock) args.push('--mock');
  for (const m of req.match) args.push('--match', m);
  if (env.mymdcSource) args.push('--mymdc-source', env.mymdcSource);
  if (env.memoryLimit !== undefined) args.push('--memory-limit', String(env.memoryLimit));
  return args;
}

/** Why a run of `env` was stopped at its time limit. */
export function timeLimitReason(env: Pick<RunEnvironment, 'timeoutMs' | 'timeLimitSetting'>): string {
  return timeLimitText({ ms: env.timeoutMs, setting: env.timeLimitSetting ?? 'run_timeout' });
}

export class FreshProcessExecutor implements RunExecutor {
  constructor(private readonly env: RunEnvironment) {}

  async execute(req: RunRequest, onOutput?: OutputSink, opts: ExecuteOptions = {}): Promise<RunOutcome> {
    const shim = startShim({
      python: this.env.python,
      command: 'run',
      args: runnerArgs(req, this.env),
      cwd: this.env.dir.root,
      timeoutMs: this.env.timeoutMs,
      onOutput,
      finalKinds: ['run_finished', 'fatal'],
    });
    const progress = new RunProgress(opts.onVariable);
    let cancelled: string | null = null;
    const cancel = (): void => {
      cancelled ??= cancelReason(opts.signal as AbortSignal);
      shim.kill();
    };
    if (opts.signal?.aborted) cancel();
    opts.signal?.addEventListener('abort', cancel);
    try {
      for await (const message of shim.messages) {
        progress.onMessage(message);
        if (message.kind === 'run_finished' || message.kind === 'fatal') {
          await shim.exited;
          const outcome = outcomeOf(message, progress.reported);
          return outcome.ok ? outcome : await keepWhatFinished(this.env, req, progress, outcome, outcome.reason, shim.pid);
        }
      }
      return { ok: false, reason: 'the Python shim ended without a result' };
    } catch (err) {
      shim.kill();
      await shim.exited;
      if (!(err instanceof ShimError)) throw err;
      const reason = cancelled ?? (err.reason === 'timeout' ? timeLimitReason(this.env) : err.message);
      const why = cancelled ?? (err.reason === 'timeout' ? reason : stoppedBecause(err.message));
      return keepWhatFinished(this.env, req, progress, { reason, detail: err.stderrTail || undefined }, why, shim.pid);
    } finally {
      opts.signal?.removeEventListener('abort', cancel);
    }
  }

  async close(): Promise<void> {}
}

/** The error of the variable a run was computing when its process ended (`how`). */
export function stoppedBecause(how: string): string {
  return `the run was stopped before this variable finished: ${how}`;
}

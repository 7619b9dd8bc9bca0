/**
 * Runs a context for one run in a fresh interpreter: one shim process (`damnit_shim.py run`)
 * that computes the variables and writes the run's HDF5 file, streaming a message per variable.
 * This is the reference backend's model; it pays Python's start-up and imports on every run.
 */
import type { VariableResultMessage } from '../context/protocol.js';
import { ShimError, startShim } from '../context/shim-process.js';
import { outcomeOf, type RunOutcome, type RunRequest } from '../runs/run-request.js';
import type { OutputSink, RunEnvironment, RunExecutor } from './executor.js';

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
  return args;
}

export function timeLimitReason(timeoutMs: number): string {
  return `stopped after the run time limit of ${timeoutMs / 1000} s (db-config run_timeout)`;
}

export class FreshProcessExecutor implements RunExecutor {
  constructor(private readonly env: RunEnvironment) {}

  async execute(req: RunRequest, onOutput?: OutputSink, signal?: AbortSignal): Promise<RunOutcome> {
    if (signal?.aborted) return { ok: false, reason: String(signal.reason) };
    const shim = startShim({
      python: this.env.python,
      command: 'run',
      args: runnerArgs(req, this.env),
      cwd: this.env.dir.root,
      timeoutMs: this.env.timeoutMs,
      onOutput,
      finalKinds: ['run_finished', 'fatal'],
    });
    const variables: VariableResultMessage[] = [];
    const cancel = (): void => shim.kill();
    signal?.addEventListener('abort', cancel, { once: true });
    try {
      for await (const message of shim.messages) {
        if (message.kind === 'variable_result') {
          variables.push(message);
        } else if (message.kind === 'run_finished' || message.kind === 'fatal') {
          await shim.exited;
          return outcomeOf(message, variables);
        }
      }
      return { ok: false, reason: signal?.aborted ? String(signal.reason) : 'the Python shim ended without a result' };
    } catch (err) {
      shim.kill();
      await shim.exited;
      if (signal?.aborted) return { ok: false, reason: String(signal.reason) };
      if (!(err instanceof ShimError)) throw err;
      const reason = err.reason === 'timeout' ? timeLimitReason(this.env.timeoutMs) : err.message;
      return { ok: false, reason, detail: err.stderrTail || undefined };
    } finally {
      signal?.removeEventListener('abort', cancel);
    }
  }

  async close(): Promise<void> {}
}

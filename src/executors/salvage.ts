/**
 * A run stopped midway (its time limit, a kill, a cancel) keeps what it computed: each of its
 * variables was staged for the run's HDF5 file as it finished (python-shim/_damnit_shim/h5writer.py)
 * and reported. Once its process is gone, the shim's `salvage` applies the staged variables to
 * the file, with the variable the run was computing recorded as an error that says why; the
 * outcome lists the same errors for runs.sqlite, so that the file and the database agree.
 */
import { PROTOCOL_VERSION, type ShimMessage, type VariableResultMessage } from '../context/protocol.js';
import { ShimError, startShim } from '../context/shim-process.js';
import type { RunOutcome, RunRequest } from '../runs/run-request.js';
import { plural } from '../text.js';
import type { RunEnvironment } from './executor.js';

/** The error class of a variable whose run was stopped before it finished. */
export const RUN_STOPPED_CLASS = 'RunStopped';
/** Salvage waits for the run's lock, held only while another writer commits: seconds at most. */
const SALVAGE_TIMEOUT_MS = 600_000;

/** A variable's failure as the run's `variable_result` would give it. */
export function stoppedResult(name: string, message: string): VariableResultMessage {
  return {
    protocol: PROTOCOL_VERSION,
    kind: 'variable_result',
    name,
    value: null,
    summary_type: null,
    summary_method: null,
    max_diff: null,
    attributes: { error: message, error_cls: RUN_STOPPED_CLASS },
    duration_s: null,
  };
}

/** Follows a run's messages: the variables it reported, the one it is computing. */
export class RunProgress {
  readonly reported: VariableResultMessage[] = [];
  running: string | null = null;
  private started = false;

  constructor(private readonly onVariable?: (result: VariableResultMessage) => void) {}

  onMessage(message: ShimMessage): void {
    if (message.kind === 'run_started') this.started = true;
    else if (message.kind === 'variable_started') this.running = message.name;
    else if (message.kind === 'variable_result') {
      if (this.running === message.name) this.running = null;
      this.reported.push(message);
      this.onVariable?.(message);
    }
  }

  /** Whether the run may have staged something for its file. */
  get staged(): boolean {
    return this.started && (this.reported.length > 0 || this.running !== null);
  }
}

/**
 * The outcome of a run that ended without finishing (`failure`), once what it staged is in the
 * run's file: its variables are those it reported, then errors for the one it was computing
 * (saying `why`) and for any value that did not survive. Call once the run's process is gone
 * or going (`writerPid`, the run's process: salvage waits for it to end, and knows its staging
 * when another writer has applied it meanwhile).
 */
export async function keepWhatFinished(
  env: RunEnvironment,
  req: RunRequest,
  progress: RunProgress,
  failure: { ok?: false; reason: string; detail?: string },
  why: string = failure.reason,
  writerPid?: number,
): Promise<Extract<RunOutcome, { ok: false }>> {
  if (!progress.staged) return { ...failure, ok: false, variables: [...progress.reported] };
  const args = ['--out', env.dir.runDataFile(req.proposal, req.run)];
  // A child the worker has not reaped yet is still alive to salvage, and its staging not yet free.
  if (writerPid !== undefined) args.push('--wait-for', String(writerPid));
  if (progress.running !== null) args.push('--interrupted', progress.running, '--reason', why);
  for (const result of progress.reported) args.push('--recorded', result.name);
  const shim = startShim({
    python: env.python,
    command: 'salvage',
    args,
    cwd: env.dir.root,
    timeoutMs: SALVAGE_TIMEOUT_MS,
    finalKinds: ['salvaged', 'fatal'],
  });
  let problem: string | null = null;
  let lost: string[] = [];
  try {
    for await (const message of shim.messages) {
      if (message.kind === 'salvaged') lost = message.lost;
      else if (message.kind === 'fatal') problem = message.message;
    }
  } catch (err) {
    if (!(err instanceof ShimError)) throw err;
    problem = err.message;
  }
  await shim.exited;
  const kept = progress.reported.filter((result) => !lost.includes(result.name));
  const variables = [
    ...kept,
    ...lost.map((name) => stoppedResult(name, lostMessage())),
    ...(progress.running === null ? [] : [stoppedResult(progress.running, why)]),
  ];
  const keptNote = `${plural(kept.length, 'finished variable')} kept`;
  const note = problem === null ? keptNote : `${keptNote} in runs.sqlite, but not in its HDF5 file: ${problem}`;
  const interrupted = progress.running === null ? '' : ` while computing '${progress.running}'`;
  return { ...failure, ok: false, reason: `${failure.reason}${interrupted}; ${note}`, variables };
}

/**
 * The outcome of a run stopped on another node (a cancel on Slurm): what it reported is kept for
 * runs.sqlite, the variable it was computing recorded as stopped; its staging stays on that
 * node, so its HDF5 file may miss them (docs/slurm.md).
 */
export function stoppedElsewhere(progress: RunProgress, failure: { reason: string; detail?: string }): Extract<RunOutcome, { ok: false }> {
  const interrupted = progress.running === null ? '' : ` while computing '${progress.running}'`;
  const kept = progress.reported.length === 0 ? '' : `; ${plural(progress.reported.length, 'finished variable')} kept in runs.sqlite, its HDF5 file may miss them`;
  return {
    ...failure,
    ok: false,
    reason: `${failure.reason}${interrupted}${kept}`,
    variables: [...progress.reported, ...(progress.running === null ? [] : [stoppedResult(progress.running, failure.reason)])],
  };
}

function lostMessage(): string {
  return 'its value was lost: the run was stopped while writing its file; reprocess the run to compute it again';
}

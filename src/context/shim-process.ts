/**
 * The one way to start the Python shim (python-shim/damnit_shim.py) in a context's interpreter.
 *
 * Messages arrive on file descriptor 3, one JSON object per line, validated with
 * parseShimMessage. The user's stdout and stderr are separate pipes handed to `onOutput` line by
 * line (each cut to OUTPUT_LINE_LIMIT characters), so nothing a context prints can corrupt the
 * protocol. The child leads its own process group, so that a timeout or kill() reaches
 * everything the context started: SIGTERM, then SIGKILL 2 s later.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { CliError } from '../cli/errors.js';
import { whenSignalledOrExiting } from '../exit-hooks.js';
import { parseShimMessage, ProtocolError, type ShimMessage } from './protocol.js';
import { OUTPUT_LINE_LIMIT, readLines } from './read-lines.js';

export type ShimCommand = 'describe' | 'run' | 'worker' | 'salvage';
export type OutputStream = 'stdout' | 'stderr';

/** Time between SIGTERM and SIGKILL when stopping a shim. */
export const KILL_GRACE_MS = 2_000;
/** How much of the user's stderr to keep for error messages. */
const STDERR_TAIL_LINES = 30;

function findShimScript(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = path.join(dir, 'python-shim', 'damnit_shim.py');
    if (existsSync(candidate)) return candidate;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('python-shim/damnit_shim.py not found above the installed backend');
    dir = parent;
  }
}

export const SHIM_SCRIPT = findShimScript();

export interface StartShimOptions {
  python: string;
  command: ShimCommand;
  args: string[];
  cwd: string;
  /** The whole process group is stopped after this long; 0 or Infinity for no limit. */
  timeoutMs: number;
  /** Added to this process's environment. */
  env?: Record<string, string | undefined>;
  /** Each line the user's code (or Python itself) writes to stdout or stderr. */
  onOutput?: (stream: OutputStream, line: string) => void;
  /**
   * Message kinds that complete the conversation. When set, the channel closing before one of
   * them arrived makes `messages` throw a ShimError saying how the process ended.
   */
  finalKinds?: readonly ShimMessage['kind'][];
  /** Give the process a stdin pipe (`ShimProcess.stdin`) instead of none. */
  input?: boolean;
}

export interface ShimExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
}

export interface ShimProcess {
  /** Every message in order, `hello` included. Throws ShimError on a protocol error or an early end. */
  messages: AsyncIterable<ShimMessage>;
  /** Resolves when the process has ended and its output has been read; never rejects. */
  exited: Promise<ShimExit>;
  /** Stops the process group: SIGTERM, then SIGKILL after KILL_GRACE_MS. */
  kill(): void;
  readonly pid: number | undefined;
  /** The process's stdin when started with `input: true`, else null. */
  readonly stdin: Writable | null;
}

export type ShimErrorReason = 'spawn' | 'protocol' | 'exited' | 'timeout';

/** The shim could not do its job; `stderrTail` holds the end of its stderr for --debug. */
export class ShimError extends CliError {
  constructor(
    message: string,
    readonly reason: ShimErrorReason,
    readonly stderrTail: string,
    readonly exit?: ShimExit,
  ) {
    super(message, 1, stderrTail || undefined);
    this.name = 'ShimError';
  }
}

/** Sends `signal` to every process of group `pgid`; a group already gone is no error. */
export function signalProcessGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
}

/**
 * Kills process group `pgid` when this process exits or is interrupted: the shims run in
 * groups of their own, which a Ctrl-C in the terminal does not reach. Returns the function that
 * takes it off the list again.
 */
export function trackProcessGroup(pgid: number): () => void {
  return whenSignalledOrExiting(() => signalProcessGroup(pgid, 'SIGKILL'));
}

/** A queue that one consumer reads as an async iterable; ends or fails once. */
class MessageQueue implements AsyncIterable<ShimMessage> {
  private readonly items: ShimMessage[] = [];
  private finished = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;

  push(message: ShimMessage): void {
    if (this.finished) return;
    this.items.push(message);
    this.notify();
  }

  finish(failure?: Error): void {
    if (this.finished) return;
    this.finished = true;
    this.failure = failure;
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<ShimMessage> {
    for (;;) {
      const next = this.items.shift();
      if (next !== undefined) {
        yield next;
      } else if (this.finished) {
        if (this.failure) throw this.failure;
        return;
      } else {
        await new Promise<void>((resolve) => (this.wake = resolve));
      }
    }
  }
}

/** How a process ended, e.g. `exited with code 1`, `was killed by SIGKILL`. */
export function describeExit(exit: ShimExit, timeoutMs: number): string {
  if (exit.timedOut) return `was stopped after its time limit of ${timeoutMs / 1000} s`;
  if (exit.signal) return `was killed by ${exit.signal}`;
  if (exit.code === null) return 'could not be started';
  return `exited with code ${exit.code}`;
}

export function startShim(opts: StartShimOptions): ShimProcess {
  const child = spawn(
    opts.python,
    [SHIM_SCRIPT, '--channel', 'fd:3', opts.command, ...opts.args],
    {
      cwd: opts.cwd,
      env: { ...process.env, PYTHONUNBUFFERED: '1', ...opts.env },
      stdio: [opts.input ? 'pipe' : 'ignore', 'pipe', 'pipe', 'pipe'],
      detached: true,
    },
  );
  const queue = new MessageQueue();
  const stderrTail: string[] = [];
  let sawFinal = false;
  let timedOut = false;
  let stopping = false;
  let hasExited = false;
  let spawnError: Error | undefined;
  let killTimer: NodeJS.Timeout | undefined;

  const signalGroup = (signal: NodeJS.Signals): void => {
    if (child.pid !== undefined) signalProcessGroup(child.pid, signal);
  };
  const untrack = child.pid !== undefined ? trackProcessGroup(child.pid) : () => {};
  // Writing to a process that has ended fails with EPIPE; its end is reported through `exited`.
  child.stdin?.on('error', () => {});

  const kill = (): void => {
    if (hasExited || stopping) return;
    stopping = true;
    signalGroup('SIGTERM');
    killTimer = setTimeout(() => signalGroup('SIGKILL'), KILL_GRACE_MS);
  };

  const timeoutTimer =
    opts.timeoutMs > 0 && Number.isFinite(opts.timeoutMs)
      ? setTimeout(() => {
          timedOut = true;
          kill();
        }, opts.timeoutMs)
      : undefined;

  const stderrText = (): string => stderrTail.join('\n');
  const lastStderrLine = (): string => {
    const last = [...stderrTail].reverse().find((line) => line.trim() !== '');
    return last ? ` (last output: ${last.trim().slice(0, 300)})` : '';
  };

  // stdio 1 to 3 are readable pipes.
  const stdout = child.stdio[1] as Readable;
  const stderr = child.stdio[2] as Readable;
  const channel = child.stdio[3] as Readable;
  const cut = { maxLineChars: OUTPUT_LINE_LIMIT };
  readLines(stdout, (line) => opts.onOutput?.('stdout', line), cut);
  readLines(
    stderr,
    (line) => {
      stderrTail.push(line);
      if (stderrTail.length > STDERR_TAIL_LINES) stderrTail.shift();
      opts.onOutput?.('stderr', line);
    },
    cut,
  );

  let protocolError: ShimError | undefined;
  readLines(channel, (line) => {
    if (protocolError || line.trim() === '') return;
    try {
      const message = parseShimMessage(line);
      if (opts.finalKinds?.includes(message.kind)) sawFinal = true;
      queue.push(message);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      protocolError = new ShimError(`Python shim protocol error: ${err.message}`, 'protocol', stderrText());
      kill();
      queue.finish(protocolError);
    }
  });

  const exited = new Promise<ShimExit>((resolve) => {
    let exitStatus: Omit<ShimExit, 'timedOut'> | undefined;
    let finished = false;
    const finish = (): void => {
      // Reached from 'close', the grace timer or a failed spawn: only the first counts.
      if (finished) return;
      finished = true;
      clearTimeout(timeoutTimer);
      clearTimeout(killTimer);
      untrack();
      const exit = { code: exitStatus?.code ?? null, signal: exitStatus?.signal ?? null, timedOut };
      resolve(exit);
      if (protocolError) return;
      if (spawnError) {
        queue.finish(new ShimError(`could not start ${opts.python}: ${spawnError.message}`, 'spawn', ''));
      } else if (opts.finalKinds && !sawFinal) {
        queue.finish(
          new ShimError(
            `the Python shim (${opts.command}) ${describeExit(exit, opts.timeoutMs)} before it reported a result` +
              lastStderrLine(),
            timedOut ? 'timeout' : 'exited',
            stderrText(),
            exit,
          ),
        );
      } else {
        queue.finish();
      }
    };
    child.on('error', (err) => {
      spawnError = err;
      // No 'exit' follows a failed spawn.
      if (child.pid === undefined) finish();
    });
    child.on('exit', (code, signal) => {
      hasExited = true;
      exitStatus = { code, signal };
      // What the context started in the shim's group ends with it (the shim itself ends what
      // left the group, python-shim/_damnit_shim/leftovers.py), and then holds no pipe open.
      signalGroup('SIGKILL');
      // Output still in the pipes is read until they close; a grandchild holding them open
      // must not keep us waiting.
      const grace = setTimeout(() => {
        for (const stream of [stdout, stderr, channel]) stream.destroy();
        finish();
      }, 1_000);
      child.once('close', () => {
        clearTimeout(grace);
        finish();
      });
    });
  });
  return { messages: queue, exited, kill, pid: child.pid, stdin: child.stdin };
}

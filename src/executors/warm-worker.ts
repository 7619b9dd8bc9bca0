/**
 * Runs contexts in a warm worker: one long-lived `damnit_shim.py worker` per executor (that is,
 * per context_python) imports numpy, h5py, xarray, extra_data... once and forks a fresh child
 * per run (python-shim/_damnit_shim/worker.py). A run costs a fork and loading context.py, not
 * an interpreter's start-up and imports.
 *
 * Each child connects back to this executor's Unix socket three times (its protocol channel,
 * its stdout, its stderr), each connection introduced by the run's random token, so the
 * messages and output of concurrent runs never mix. The worker reports each child's pid and
 * exit; a run's time limit stops that child's process group only. A worker that dies fails the
 * runs it had in flight and is started again for the next run.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import {
  parseChildAttach,
  parseShimMessage,
  ProtocolError,
  WorkerRunRequest,
  type ChildAttach,
  type ShimMessage,
} from '../context/protocol.js';
import {
  describeExit,
  KILL_GRACE_MS,
  ShimError,
  signalProcessGroup,
  startShim,
  trackProcessGroup,
  type ShimExit,
  type ShimProcess,
} from '../context/shim-process.js';
import { OUTPUT_LINE_LIMIT, readLines } from '../context/read-lines.js';
import { outcomeOf, type RunOutcome, type RunRequest } from '../runs/run-request.js';
import { makeTempDir, removeTempDir } from '../temp-dirs.js';
import { cancelReason, type ExecuteOptions, type OutputSink, type RunEnvironment, type RunExecutor } from './executor.js';
import { runnerArgs, stoppedBecause, timeLimitReason } from './local.js';
import { keepWhatFinished, RunProgress } from './salvage.js';

/** How long a finished child's connections may stay open (held by what it started). */
const STREAM_GRACE_MS = 1_000;
const STDERR_TAIL_LINES = 30;

/** What the worker said when it was ready: for diagnostics and the benchmark. */
export interface WorkerInfo {
  pid: number;
  preloaded: string[];
  unavailable: string[];
  /** Time the worker spent importing. */
  seconds: number;
}

function lastLine(lines: string[]): string {
  const last = [...lines].reverse().find((line) => line.trim() !== '');
  return last ? ` (last output: ${last.trim().slice(0, 300)})` : '';
}

/** One run sent to the worker, from the request to its outcome. */
class Flight {
  private pid: number | undefined;
  private exit: Pick<ShimExit, 'code' | 'signal'> | undefined;
  readonly progress: RunProgress;
  private final: Extract<ShimMessage, { kind: 'run_finished' | 'fatal' }> | undefined;
  private failure: string | undefined;
  private timedOut = false;
  /** Why the run was cancelled (ExecuteOptions.signal), if it was. */
  private cancelled: string | undefined;
  private stopping = false;
  private readonly stderrTail: string[] = [];
  private readonly attached = new Set<ChildAttach['stream']>();
  private closedStreams = 0;
  private readonly sockets: net.Socket[] = [];
  private untrack: () => void = () => {};
  private readonly timers: NodeJS.Timeout[] = [];
  private resolve!: (outcome: RunOutcome) => void;
  readonly outcome = new Promise<RunOutcome>((resolve) => (this.resolve = resolve));
  private settled = false;

  constructor(
    private readonly id: number,
    private readonly worker: WorkerHandle,
    private readonly env: RunEnvironment,
    private readonly onOutput: OutputSink | undefined,
    opts: ExecuteOptions,
  ) {
    this.progress = new RunProgress(opts.onVariable);
    const timeoutMs = env.timeoutMs;
    if (timeoutMs > 0 && Number.isFinite(timeoutMs)) {
      this.timers.push(
        setTimeout(() => {
          this.timedOut = true;
          this.stop();
        }, timeoutMs),
      );
    }
  }

  /** Takes a connection of this run's child; false if that stream is already attached. */
  attach(stream: ChildAttach['stream'], socket: net.Socket): boolean {
    if (this.settled || this.attached.has(stream)) return false;
    this.attached.add(stream);
    this.sockets.push(socket);
    socket.once('close', () => {
      this.closedStreams += 1;
      this.maybeFinish();
    });
    return true;
  }

  onLine(stream: ChildAttach['stream'], line: string): void {
    if (stream !== 'channel') {
      if (stream === 'stderr') {
        this.stderrTail.push(line);
        if (this.stderrTail.length > STDERR_TAIL_LINES) this.stderrTail.shift();
      }
      this.onOutput?.(stream, line);
      return;
    }
    if (this.failure !== undefined || line.trim() === '') return;
    let message: ShimMessage;
    try {
      message = parseShimMessage(line);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      this.fail(`Python shim protocol error: ${err.message}`);
      return;
    }
    if (message.kind === 'run_finished' || message.kind === 'fatal') this.final = message;
    else if (['run_started', 'variable_started', 'variable_result'].includes(message.kind)) this.progress.onMessage(message);
    else if (message.kind !== 'hello') {
      this.fail(`Python shim protocol error: a run's channel carried a '${message.kind}' message`);
    }
  }

  childStarted(pid: number): void {
    this.pid = pid;
    this.untrack = trackProcessGroup(pid);
  }

  childExited(exit: Pick<ShimExit, 'code' | 'signal'>): void {
    this.exit = exit;
    // What the context started in the child's group ends with it (the child itself ends what
    // left the group: python-shim/_damnit_shim/leftovers.py).
    this.signal('SIGKILL');
    this.untrack();
    this.timers.push(setTimeout(() => this.finish(), STREAM_GRACE_MS));
    this.maybeFinish();
  }

  /** The worker ended before this run's child did: stop the child and fail the run. */
  workerLost(reason: string): void {
    if (this.exit !== undefined) return; // only its output is still coming in
    if (this.pid !== undefined) this.signal('SIGKILL');
    this.untrack();
    if (this.final?.kind !== 'run_finished') this.failure ??= reason;
    this.finish();
  }

  /** Stops the run at the caller's request: it fails with `reason`, keeping what it finished. */
  cancel(reason: string): void {
    this.cancelled ??= reason;
    this.stop();
  }

  /** The pid of the run's child, once known. */
  get childPid(): number | undefined {
    return this.pid;
  }

  /** Why the variable the run was computing did not finish, for a run that failed with `reason`. */
  interruption(reason: string): string {
    if (this.cancelled !== undefined) return this.cancelled;
    if (this.timedOut) return timeLimitReason(this.env);
    return stoppedBecause(reason);
  }

  /** Stops the run for a reason of our own (a protocol error, a refused request). */
  fail(reason: string): void {
    this.failure ??= reason;
    this.stop();
  }

  /**
   * SIGTERM to the child's group, SIGKILL after KILL_GRACE_MS. Before the child is known the
   * run ends at once; a child that starts after that is killed (WarmWorkerExecutor).
   */
  private stop(): void {
    if (this.stopping || this.settled) return;
    this.stopping = true;
    if (this.pid === undefined) {
      this.finish();
      return;
    }
    this.signal('SIGTERM');
    this.timers.push(setTimeout(() => this.signal('SIGKILL'), KILL_GRACE_MS));
  }

  private signal(signal: NodeJS.Signals): void {
    if (this.pid !== undefined) signalProcessGroup(this.pid, signal);
  }

  /**
   * Done once the child's three connections are closed and it has either ended or given its
   * final message: a finished child closes them before it exits, so its run is not held up
   * while the kernel tears down its (large, copied-on-write) address space.
   */
  private maybeFinish(): void {
    if (this.closedStreams >= 3 && (this.exit !== undefined || this.final !== undefined)) this.finish();
  }

  private finish(): void {
    if (this.settled) return;
    this.settled = true;
    for (const timer of this.timers) clearTimeout(timer);
    // A process that escaped the run's end may still hold them: the run is over all the same,
    // and the executor's server must not wait for them to close.
    for (const socket of this.sockets) socket.destroy();
    this.untrack();
    this.worker.flights.delete(this.id);
    this.resolve(this.result());
  }

  private result(): RunOutcome {
    const detail = this.stderrTail.join('\n') || undefined;
    if (this.failure !== undefined) return { ok: false, reason: this.failure, detail };
    if (this.final && !(this.cancelled !== undefined && this.final.kind === 'fatal')) {
      return outcomeOf(this.final, this.progress.reported);
    }
    if (this.cancelled !== undefined) return { ok: false, reason: this.cancelled, detail };
    if (this.timedOut) return { ok: false, reason: timeLimitReason(this.env), detail };
    const exit = { code: this.exit?.code ?? null, signal: this.exit?.signal ?? null, timedOut: false };
    return {
      ok: false,
      reason: `the Python shim (run) ${describeExit(exit, this.env.timeoutMs)} before it reported a result${lastLine(this.stderrTail)}`,
      detail,
    };
  }
}

/** One worker process and the runs sent to it. */
interface WorkerHandle {
  shim: ShimProcess;
  flights: Map<number, Flight>;
  stderrTail: string[];
  /** Set when we decided to stop it (protocol breach, close()). */
  stopReason: string | undefined;
}

export interface WarmWorkerOptions {
  /** The worker's own output (not a run's): import warnings and the like. */
  onWorkerOutput?: OutputSink;
}

export class WarmWorkerExecutor implements RunExecutor {
  private worker: WorkerHandle | undefined;
  private socketDir: string | undefined;
  private server: Promise<{ server: net.Server; socketPath: string }> | undefined;
  private nextId = 0;
  private readonly byToken = new Map<string, Flight>();
  private closed = false;
  private latestInfo: WorkerInfo | undefined;

  constructor(
    private readonly env: RunEnvironment,
    private readonly opts: WarmWorkerOptions = {},
  ) {}

  /** What the latest worker said when it was ready; undefined before any was. */
  get workerInfo(): WorkerInfo | undefined {
    return this.latestInfo;
  }

  /** The pid of the current worker, if one is running. */
  get workerPid(): number | undefined {
    return this.worker?.shim.pid;
  }

  async execute(req: RunRequest, onOutput?: OutputSink, opts: ExecuteOptions = {}): Promise<RunOutcome> {
    if (this.closed) throw new Error('WarmWorkerExecutor.execute after close()');
    const { socketPath } = await this.listen();
    const worker = this.ensureWorker(socketPath);
    const id = this.nextId++;
    const token = randomBytes(16).toString('hex');
    const flight = new Flight(id, worker, this.env, onOutput, opts);
    worker.flights.set(id, flight);
    this.byToken.set(token, flight);
    const request = WorkerRunRequest.parse({
      protocol: 1,
      kind: 'run',
      id,
      token,
      cwd: this.env.dir.root,
      argv: runnerArgs(req, this.env),
    });
    worker.shim.stdin?.write(`${JSON.stringify(request)}\n`);
    const cancel = (): void => flight.cancel(cancelReason(opts.signal as AbortSignal));
    if (opts.signal?.aborted) cancel();
    opts.signal?.addEventListener('abort', cancel);
    let outcome: RunOutcome;
    try {
      outcome = await flight.outcome;
    } finally {
      opts.signal?.removeEventListener('abort', cancel);
      this.byToken.delete(token);
    }
    if (outcome.ok) return outcome;
    return keepWhatFinished(this.env, req, flight.progress, outcome, flight.interruption(outcome.reason), flight.childPid);
  }

  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    if (worker) {
      worker.stopReason ??= 'the executor was closed while this run was in progress';
      // End of stdin asks the worker to stop its children and leave; the signal makes sure.
      worker.shim.stdin?.end();
      worker.shim.kill();
      await worker.shim.exited;
    }
    if (this.server) {
      const { server } = await this.server;
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    if (this.socketDir) removeTempDir(this.socketDir);
  }

  private listen(): Promise<{ server: net.Server; socketPath: string }> {
    this.server ??= new Promise((resolve, reject) => {
      // A private directory (mode 0700): only this user can connect; tokens say which run.
      this.socketDir = makeTempDir('damnit-worker-');
      const socketPath = path.join(this.socketDir, 'runs.sock');
      const server = net.createServer((socket) => this.accept(socket));
      server.once('error', reject);
      server.listen(socketPath, () => resolve({ server, socketPath }));
    });
    return this.server;
  }

  /** A connection from a child: its first line says which run and which stream it is. */
  private accept(socket: net.Socket): void {
    // A child killed mid-write resets its connection; the run's end is reported by the worker.
    socket.on('error', () => {});
    let target: { flight: Flight; stream: ChildAttach['stream'] } | undefined;
    let refused = false;
    // The attach line and the channel's messages are read whole; the context's output is cut.
    const maxLineChars = (): number =>
      target === undefined || target.stream === 'channel' ? Number.POSITIVE_INFINITY : OUTPUT_LINE_LIMIT;
    readLines(socket, (line) => {
      if (refused) return;
      if (target) {
        target.flight.onLine(target.stream, line);
        return;
      }
      let attach: ChildAttach;
      try {
        attach = parseChildAttach(line);
      } catch {
        refused = true;
        socket.destroy();
        return;
      }
      const flight = this.byToken.get(attach.token);
      if (!flight || !flight.attach(attach.stream, socket)) {
        refused = true;
        socket.destroy();
        return;
      }
      target = { flight, stream: attach.stream };
    }, { maxLineChars });
  }

  private ensureWorker(socketPath: string): WorkerHandle {
    if (this.worker) return this.worker;
    const stderrTail: string[] = [];
    const shim = startShim({
      python: this.env.python,
      command: 'worker',
      args: ['--socket', socketPath],
      cwd: this.env.dir.root,
      timeoutMs: 0,
      input: true,
      onOutput: (stream, line) => {
        if (stream === 'stderr') {
          stderrTail.push(line);
          if (stderrTail.length > STDERR_TAIL_LINES) stderrTail.shift();
        }
        this.opts.onWorkerOutput?.(stream, line);
      },
    });
    const worker: WorkerHandle = { shim, flights: new Map(), stderrTail, stopReason: undefined };
    this.worker = worker;
    void this.follow(worker);
    return worker;
  }

  /** Reads the worker's messages until it ends, then fails what it still had in flight. */
  private async follow(worker: WorkerHandle): Promise<void> {
    let failure: string | undefined;
    try {
      for await (const message of worker.shim.messages) this.onWorkerMessage(worker, message);
    } catch (err) {
      if (!(err instanceof ShimError)) throw err;
      failure = err.message;
    }
    const exit = await worker.shim.exited;
    if (this.worker === worker) this.worker = undefined;
    const pid = worker.shim.pid === undefined ? '' : ` (pid ${worker.shim.pid})`;
    const how = failure === undefined ? describeExit(exit, 0) : `failed (${failure})`;
    const reason =
      worker.stopReason ??
      `the warm worker${pid} ${how} while this run was in progress; the run was stopped${lastLine(worker.stderrTail)}`;
    for (const flight of [...worker.flights.values()]) flight.workerLost(reason);
  }

  private onWorkerMessage(worker: WorkerHandle, message: ShimMessage): void {
    switch (message.kind) {
      case 'hello':
        return;
      case 'worker_ready':
        this.latestInfo = {
          pid: message.pid,
          preloaded: message.preloaded,
          unavailable: message.unavailable,
          seconds: message.seconds,
        };
        return;
      case 'child_started': {
        const flight = worker.flights.get(message.id);
        // A run that already ended (time limit, protocol error) before its child was known.
        if (flight) flight.childStarted(message.pid);
        else signalProcessGroup(message.pid, 'SIGKILL');
        return;
      }
      case 'child_exited':
        worker.flights.get(message.id)?.childExited({
          code: message.code,
          signal: message.signal as NodeJS.Signals | null,
        });
        return;
      case 'request_refused': {
        const reason = `the warm worker refused the run: ${message.message}`;
        const flight = message.id === null ? undefined : worker.flights.get(message.id);
        if (flight) {
          flight.fail(reason);
          return;
        }
        this.breach(worker, reason);
        return;
      }
      default:
        this.breach(worker, `Python shim protocol error: the warm worker sent a '${message.kind}' message`);
    }
  }

  /** The worker said something it never should: stop it; its runs fail with `reason`. */
  private breach(worker: WorkerHandle, reason: string): void {
    worker.stopReason ??= reason;
    worker.shim.kill();
  }
}

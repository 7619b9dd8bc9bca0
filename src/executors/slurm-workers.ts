/**
 * Warm workers on Slurm (process_on slurm with slurm_worker_jobs 1, docs/slurm.md): long-lived
 * Slurm jobs `worker-p<P>-damnit`, each holding a warm worker (python-shim remote-worker) that
 * connects back to this process over TCP and takes runs as they arrive, one at a time. The
 * fork-server protocol is the local warm worker's (warm-worker.ts): requests and worker messages
 * on the job's connection, and each run's child connecting back three times (channel, stdout,
 * stderr) with its run's token. A worker job authenticates with its own token, handed over in
 * a file only the user can read.
 *
 * The pool keeps at most `concurrent_jobs` worker jobs (read at each run), starts them as runs
 * wait, and ends a worker that stayed idle `slurm_worker_idle` seconds. A worker job that ends
 * (time limit, node failure, scancel, a lost connection) is replaced, and the run it held is
 * requeued once; a second loss fails the run. A worker job still pending after
 * `slurm_worker_start` seconds is cancelled, and runs go to one Slurm job each (SlurmJobExecutor)
 * for the next FALLBACK_MS, with Slurm's reason in the note. A cancelled run (ExecuteOptions.signal)
 * leaves the queue, or has the worker stop its child (a `stop` request): the worker job stays
 * for the next run. Records nothing, as every executor.
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { OUTPUT_LINE_LIMIT, readLines } from '../context/read-lines.js';
import { parseConnectionAttach, parseShimMessage, WorkerRunRequest, WorkerStopRequest, type ShimMessage } from '../context/protocol.js';
import { KILL_GRACE_MS } from '../context/shim-process.js';
import { numberSetting, stringSetting, type SettingsSource } from '../db/config-keys.js';
import type { RunOutcome, RunRequest } from '../runs/run-request.js';
import { Flight, type Entry } from './remote-flight.js';
import { cancelReason, type ExecuteOptions, type OutputSink, type RunEnvironment, type RunExecutor } from './executor.js';
import { runnerArgs, timeLimitReason } from './local.js';
import {
  cancelJob,
  queueState,
  SlurmError,
  SlurmUnavailableError,
  slurmWorkerLogFile,
  waitForJob,
  type JobOutcome,
} from './slurm.js';
import { SlurmJobExecutor } from './slurm-job.js';
import { jobEndReason, shownPath, type SlurmJobEvent } from './slurm-run.js';
import { PROCESS_HERE_HINT, slurmSettings } from './slurm-settings.js';
import { submitWorkerJob, type SubmittedWorker } from './worker-job.js';

/** How long runs go to one job each after worker jobs could not start. */
export const FALLBACK_MS = 10 * 60_000;
/** After a worker's connection closes, how long to wait for Slurm to say how its job ended. */
const END_STATE_WAIT_MS = 5_000;
/** Worker jobs that end before connecting, in a row, before the pool falls back. */
const FAILED_STARTS_BEFORE_FALLBACK = 2;

export interface SlurmWorkerPoolOptions {
  /** The database's settings (db.metameta), read as they are needed. */
  settings: SettingsSource;
  /** Interface the pool listens on; all of them by default (worker jobs run on other nodes). */
  listenHost?: string;
  /** Time between two looks at Slurm's queue; 2 s by default. */
  pollMs?: number;
  /** Environment for Slurm's commands (SLURM_CONF in tests). */
  env?: Record<string, string | undefined>;
  /** A run given to a worker job (`started`, with the job's id and node) and its end (`ended`). */
  onJobEvent?: (event: SlurmJobEvent) => void;
  /** What the pool decided and why: a replaced worker, a requeued run, a fallback. */
  onNote?: (message: string) => void;
  /** One job per run, for the fallback; a SlurmJobExecutor with the same settings by default. */
  fallback?: RunExecutor;
}

type WorkerState = 'pending' | 'starting' | 'ready' | 'busy' | 'ending' | 'ended';

interface WorkerJob {
  token: string;
  jobId: string | null;
  host: string | null;
  state: WorkerState;
  socket: net.Socket | null;
  flight: Flight | null;
  /** Holds the token file (worker-job.ts); null until submitted. */
  tokenDir: string | null;
  proposal: number;
  /** Resolves with how Slurm says the job ended (or an error when following it failed). */
  end: Promise<JobOutcome | Error>;
  stopFollowing: AbortController;
  timers: Set<NodeJS.Timeout>;
  /** Set when the pool ended the job on purpose (idle, run time limit, close). */
  endingReason: string | null;
  /** Set when the connection failed (reset, aborted) rather than closed: the node lost it. */
  connectionError: string | null;
  socketClosed: boolean;
}

export class SlurmWorkerPool implements RunExecutor {
  private server: Promise<{ server: net.Server; port: number }> | undefined;
  private readonly workers = new Set<WorkerJob>();
  private readonly queue: Entry[] = [];
  private readonly byRunToken = new Map<string, Flight>();
  private nextId = 0;
  private closed = false;
  private fallbackUntil = 0;
  private failedStarts = 0;
  private fallbackExecutor: RunExecutor | undefined;
  private readonly user = os.userInfo().username;

  constructor(
    private readonly env: RunEnvironment,
    private readonly opts: SlurmWorkerPoolOptions,
  ) {}

  /** The worker jobs not yet ended, with their ids and states (for tests and the benchmark). */
  get workerJobs(): { jobId: string | null; state: WorkerState; host: string | null }[] {
    return [...this.workers].map((w) => ({ jobId: w.jobId, state: w.state, host: w.host }));
  }

  /** The TCP port worker jobs connect to (listening from the first run on). */
  async port(): Promise<number> {
    return (await this.listen()).port;
  }

  async execute(req: RunRequest, onOutput?: OutputSink, opts?: ExecuteOptions): Promise<RunOutcome> {
    if (this.closed) throw new Error('SlurmWorkerPool.execute after close()');
    if (Date.now() < this.fallbackUntil) return this.fallback().execute(req, onOutput, opts);
    await this.listen();
    const signal = opts?.signal;
    return new Promise<RunOutcome>((resolve) => {
      const entry: Entry = { req, onOutput, opts: opts ?? {}, lost: [], resolve: (outcome) => {
        signal?.removeEventListener('abort', cancel);
        resolve(outcome);
      } };
      const cancel = (): void => this.cancel(entry, cancelReason(signal as AbortSignal));
      this.queue.push(entry);
      if (signal?.aborted) cancel();
      else signal?.addEventListener('abort', cancel);
      this.pump();
    });
  }

  /** A cancelled run: out of the queue, or its child stopped by its worker, which stays. */
  private cancel(entry: Entry, reason: string): void {
    const queued = this.queue.indexOf(entry);
    if (queued >= 0) {
      this.queue.splice(queued, 1);
      entry.resolve({ ok: false, reason });
      return;
    }
    const worker = [...this.workers].find((w) => w.flight?.entry === entry);
    const flight = worker?.flight;
    if (!worker || !flight || flight.cancelled !== undefined) return;
    flight.cancelled = reason;
    const stop = (signal: 'SIGTERM' | 'SIGKILL'): void => {
      if (worker.flight !== flight) return;
      worker.socket?.write(`${JSON.stringify(WorkerStopRequest.parse({ protocol: 1, kind: 'stop', id: flight.id, signal }))}\n`);
    };
    stop('SIGTERM');
    this.timer(worker, KILL_GRACE_MS, () => stop('SIGKILL'));
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const entry of this.queue.splice(0)) entry.resolve({ ok: false, reason: 'stopped before a worker job took the run' });
    await Promise.all([...this.workers].map((w) => this.endWorker(w, 'the backend stopped', { cancel: true })));
    await Promise.all([...this.workers].map((w) => w.end));
    await this.fallbackExecutor?.close();
    if (this.server) {
      const { server } = await this.server;
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }

  private fallback(): RunExecutor {
    this.fallbackExecutor ??=
      this.opts.fallback ??
      new SlurmJobExecutor(this.env, {
        settings: this.opts.settings,
        env: this.opts.env,
        pollMs: this.opts.pollMs,
        onJobEvent: this.opts.onJobEvent,
        onSubmitted: (req, jobId, log) => this.opts.onNote?.(`r${req.run}: submitted as Slurm job ${jobId} (output in ${log})`),
      });
    return this.fallbackExecutor;
  }

  private listen(): Promise<{ server: net.Server; port: number }> {
    this.server ??= new Promise((resolve, reject) => {
      const server = net.createServer((socket) => this.accept(socket));
      server.once('error', reject);
      server.listen(0, this.opts.listenHost, () => resolve({ server, port: (server.address() as net.AddressInfo).port }));
    });
    return this.server;
  }

  /** Gives waiting runs to ready workers, and starts worker jobs for the runs left over. */
  private pump(): void {
    if (this.closed) return;
    for (const worker of this.workers) {
      if (this.queue.length === 0) break;
      if (worker.state === 'ready') this.assign(worker, this.queue.shift() as Entry);
    }
    if (Date.now() < this.fallbackUntil) {
      for (const entry of this.queue.splice(0)) void this.fallback().execute(entry.req, entry.onOutput, entry.opts).then(entry.resolve);
      return;
    }
    const max = Math.max(1, numberSetting(this.opts.settings, 'concurrent_jobs'));
    const live = [...this.workers].filter((w) => w.state !== 'ended' && w.state !== 'ending');
    const coming = live.filter((w) => w.state === 'pending' || w.state === 'starting').length;
    let wanted = Math.min(this.queue.length - coming, max - live.length);
    while (wanted-- > 0) void this.startWorker();
  }

  private assign(worker: WorkerJob, entry: Entry): void {
    const flight = new Flight(this.nextId++, entry, (f) => this.flightDone(worker, f));
    worker.flight = flight;
    worker.state = 'busy';
    this.clearTimers(worker);
    this.byRunToken.set(flight.token, flight);
    const request = WorkerRunRequest.parse({
      protocol: 1,
      kind: 'run',
      id: flight.id,
      token: flight.token,
      cwd: this.env.dir.root,
      argv: runnerArgs(entry.req, this.env),
    });
    worker.socket?.write(`${JSON.stringify(request)}\n`);
    this.runEvent(worker, entry.req, 'started');
    const timeoutMs = this.env.timeoutMs;
    if (timeoutMs > 0 && Number.isFinite(timeoutMs)) {
      // The run's process is on another node: the worker job goes with it, and is replaced.
      this.timer(worker, timeoutMs, () => {
        if (worker.flight !== flight) return;
        flight.failure = timeLimitReason(this.env);
        flight.done();
        void this.endWorker(worker, `a run in it passed run_timeout`, { cancel: true });
      });
    }
  }

  private flightDone(worker: WorkerJob, flight: Flight, waited = false): void {
    if (worker.flight !== flight) return;
    // A child killed by a signal is often the first sign of its worker job going down (scancel,
    // time limit: the worker stops its children as it leaves). Give the job a moment to end:
    // if it does, workerGone requeues the run.
    if (!waited && !flight.finished && flight.failure === undefined && flight.cancelled === undefined && flight.exit?.signal) {
      this.timer(worker, END_STATE_WAIT_MS, () => {
        if (!worker.socketClosed) this.flightDone(worker, flight, true);
      });
      return;
    }
    this.byRunToken.delete(flight.token);
    worker.flight = null;
    this.clearTimers(worker);
    this.runEvent(worker, flight.entry.req, 'ended');
    flight.entry.resolve(flight.outcome());
    if (worker.state === 'busy') {
      worker.state = 'ready';
      this.startIdleTimer(worker);
    }
    this.pump();
  }

  private startIdleTimer(worker: WorkerJob): void {
    const idleMs = numberSetting(this.opts.settings, 'slurm_worker_idle') * 1000;
    this.timer(worker, idleMs, () => {
      if (worker.state === 'ready') void this.endWorker(worker, `idle for ${idleMs / 1000} s`, { cancel: false });
    });
  }

  private runEvent(worker: WorkerJob, req: RunRequest, phase: 'started' | 'ended'): void {
    if (!worker.jobId) return;
    this.opts.onJobEvent?.({ phase, jobId: worker.jobId, proposal: req.proposal, run: req.run, user: this.user, host: worker.host, state: null });
  }

  private timer(worker: WorkerJob, ms: number, fire: () => void): void {
    const timer = setTimeout(() => {
      worker.timers.delete(timer);
      fire();
    }, ms);
    worker.timers.add(timer);
  }

  private clearTimers(worker: WorkerJob): void {
    for (const timer of worker.timers) clearTimeout(timer);
    worker.timers.clear();
  }

  /** The address worker jobs connect to: slurm_worker_host, else this machine's name. */
  private connectHost(): string {
    return stringSetting(this.opts.settings, 'slurm_worker_host')?.trim() || os.hostname();
  }

  private async startWorker(): Promise<void> {
    const proposal = this.queue[0]?.req.proposal ?? 0;
    const worker: WorkerJob = {
      token: randomBytes(16).toString('hex'),
      jobId: null,
      host: null,
      state: 'pending',
      socket: null,
      flight: null,
      tokenDir: null,
      proposal,
      end: Promise.resolve(new Error('not submitted')),
      stopFollowing: new AbortController(),
      timers: new Set(),
      endingReason: null,
      connectionError: null,
      socketClosed: false,
    };
    this.workers.add(worker);
    let submitted: SubmittedWorker;
    try {
      const { port } = await this.listen();
      const connect = `${this.connectHost()}:${port}`;
      submitted = await submitWorkerJob(this.env, this.opts.settings, { proposal, connect, token: worker.token }, { env: this.opts.env });
      worker.jobId = submitted.jobId;
      worker.tokenDir = submitted.tokenDir;
    } catch (err) {
      this.workers.delete(worker);
      if (!(err instanceof SlurmError)) throw err;
      // Slurm refused it (or is missing): a job per run would be refused alike. Say it to the runs.
      const hint = err instanceof SlurmUnavailableError ? PROCESS_HERE_HINT : '';
      for (const entry of this.queue.splice(0)) entry.resolve({ ok: false, reason: `${err.message}${hint}` });
      return;
    }
    const jobId = worker.jobId;
    if (this.closed) {
      // close() came while sbatch ran: nobody will give this job a run.
      this.workers.delete(worker);
      await cancelJob(jobId, { env: this.opts.env }).catch(() => undefined);
      rmSync(submitted.tokenDir, { recursive: true, force: true });
      return;
    }
    this.opts.onNote?.(`worker job ${jobId} submitted (output in ${shownPath(this.env.dir, slurmWorkerLogFile(this.env.dir, proposal, jobId))})`);
    worker.end = waitForJob(jobId, { env: this.opts.env, pollMs: this.opts.pollMs, signal: worker.stopFollowing.signal }).then(
      (outcome) => outcome,
      (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
    );
    void worker.end.then((outcome) => this.workerGone(worker, outcome));
    const startMs = numberSetting(this.opts.settings, 'slurm_worker_start') * 1000;
    this.timer(worker, startMs, () => void this.startedTooLate(worker, startMs));
  }

  /** The worker job is still not connected: cancel it and process runs as one job each for a while. */
  private async startedTooLate(worker: WorkerJob, startMs: number): Promise<void> {
    if (worker.state !== 'pending' || !worker.jobId) return;
    const why = (await queueState(worker.jobId, { env: this.opts.env })) ?? 'no longer queued';
    this.enterFallback(`worker job ${worker.jobId} did not start within ${startMs / 1000} s (Slurm: ${why})`);
    await this.endWorker(worker, 'it did not start in time', { cancel: true });
  }

  private enterFallback(why: string): void {
    this.fallbackUntil = Date.now() + FALLBACK_MS;
    this.opts.onNote?.(`${why}; runs go to one Slurm job each for the next ${FALLBACK_MS / 60_000} minutes`);
    this.pump();
  }

  /** A connection to the pool's port: a worker job, or a run's child. */
  private accept(socket: net.Socket): void {
    socket.on('error', () => {});
    socket.setNoDelay(true);
    let route: ((line: string) => void) | undefined;
    // The attach line, the worker's messages and a run's channel are read whole; a run's output is cut.
    let output = false;
    const maxLineChars = (): number => (output ? OUTPUT_LINE_LIMIT : Number.POSITIVE_INFINITY);
    readLines(socket, (line) => {
      if (route) {
        route(line);
        return;
      }
      let attach;
      try {
        attach = parseConnectionAttach(line);
      } catch {
        socket.destroy();
        return;
      }
      if (attach.kind === 'attach') {
        const flight = this.byRunToken.get(attach.token);
        if (!flight || !flight.attach(attach.stream, socket)) {
          socket.destroy();
          return;
        }
        const stream = attach.stream;
        output = stream !== 'channel';
        route = (l) => flight.onLine(stream, l);
        return;
      }
      const worker = [...this.workers].find((w) => w.token === attach.token && w.state === 'pending' && w.socket === null);
      if (!worker) {
        socket.destroy();
        return;
      }
      worker.socket = socket;
      worker.host = attach.host;
      worker.state = 'starting';
      socket.on('error', (err: NodeJS.ErrnoException) => {
        if (worker.state !== 'ending') worker.connectionError ??= err.code ?? err.message;
      });
      socket.once('close', () => {
        worker.socketClosed = true;
        void this.connectionClosed(worker);
      });
      route = (l) => this.onWorkerLine(worker, l);
    }, { maxLineChars });
  }

  private onWorkerLine(worker: WorkerJob, line: string): void {
    if (line.trim() === '') return;
    let message: ShimMessage;
    try {
      message = parseShimMessage(line);
    } catch {
      void this.endWorker(worker, 'it broke the protocol', { cancel: true });
      return;
    }
    switch (message.kind) {
      case 'worker_ready':
        if (worker.state !== 'starting') return;
        worker.state = 'ready';
        this.failedStarts = 0;
        this.clearTimers(worker);
        this.startIdleTimer(worker);
        this.pump();
        return;
      case 'child_exited':
        if (worker.flight?.id === message.id) worker.flight.childExited({ code: message.code, signal: message.signal });
        return;
      case 'request_refused':
        if (worker.flight && (message.id === null || message.id === worker.flight.id)) {
          worker.flight.failure = `the worker refused the run: ${message.message}`;
          worker.flight.done();
        }
        return;
      default:
        return;
    }
  }

  /** Ends a worker job: its connection closed (the worker leaves at the end of its input), and cancelled if asked. */
  private async endWorker(worker: WorkerJob, reason: string, opts: { cancel: boolean }): Promise<void> {
    if (worker.state === 'ended' || worker.state === 'ending') return;
    worker.state = 'ending';
    worker.endingReason = reason;
    this.clearTimers(worker);
    worker.socket?.end();
    if (opts.cancel && worker.jobId) await cancelJob(worker.jobId, { env: this.opts.env }).catch(() => undefined);
  }

  /** The worker's connection closed: wait a moment for Slurm to say how its job ended, then settle. */
  private async connectionClosed(worker: WorkerJob): Promise<void> {
    const ended = await Promise.race([worker.end, new Promise<null>((r) => setTimeout(() => r(null), END_STATE_WAIT_MS))]);
    if (ended === null && worker.state !== 'ended' && worker.jobId) {
      // Still running in Slurm's eyes: the connection was lost. The job cannot be used again.
      worker.endingReason ??= `the connection to worker job ${worker.jobId}${worker.host ? ` on ${worker.host}` : ''} was lost`;
      await cancelJob(worker.jobId, { env: this.opts.env }).catch(() => undefined);
    }
    this.workerGone(worker, ended ?? null);
  }

  /** The worker job is over (its connection closed, or Slurm says it ended): replace it, requeue its run. */
  private workerGone(worker: WorkerJob, outcome: JobOutcome | Error | null): void {
    if (worker.state === 'ended') return;
    const wasPending = worker.state === 'pending';
    worker.state = 'ended';
    this.clearTimers(worker);
    worker.stopFollowing.abort();
    worker.socket?.destroy();
    if (worker.tokenDir) rmSync(worker.tokenDir, { recursive: true, force: true });
    this.workers.delete(worker);
    const jobId = worker.jobId ?? '?';
    const log = worker.jobId ? slurmWorkerLogFile(this.env.dir, worker.proposal, worker.jobId) : null;
    const how = worker.connectionError
      ? `lost the connection to worker job ${jobId}${worker.host ? ` on ${worker.host}` : ''} (${worker.connectionError})`
      : outcome && !(outcome instanceof Error)
        ? `worker ${jobEndReason(outcome, log, this.env.dir, slurmSettings(this.opts.settings))}`
        : (worker.endingReason ?? `worker job ${jobId} ended`);
    if (wasPending && worker.endingReason === null && !this.closed) {
      // It ended before it connected: a broken interpreter, a node that failed at once...
      this.failedStarts += 1;
      const where = log ? `; its output is in ${shownPath(this.env.dir, log)}` : '';
      if (this.failedStarts >= FAILED_STARTS_BEFORE_FALLBACK) {
        this.enterFallback(`worker job ${jobId} ended before it connected (${how})${where}`);
        return;
      }
    }
    const flight = worker.flight;
    worker.flight = null;
    if (flight) {
      this.byRunToken.delete(flight.token);
      if (flight.finished || flight.cancelled !== undefined) {
        flight.entry.resolve(flight.outcome());
      } else if (worker.endingReason === `a run in it passed run_timeout` || this.closed) {
        flight.entry.resolve(this.closed ? { ok: false, reason: 'the backend stopped during the run' } : flight.outcome());
      } else {
        const entry = flight.entry;
        entry.lost.push(`${how}`);
        if (entry.lost.length === 1) {
          this.opts.onNote?.(`r${entry.req.run}: ${how}, while processing it: requeued to another worker job`);
          this.queue.unshift(entry);
        } else {
          entry.resolve({
            ok: false,
            reason: `lost its worker job twice: ${entry.lost.join('; then ')}`,
            detail: flight.stderrTail.join('\n') || undefined,
          });
        }
      }
    }
    this.pump();
  }
}

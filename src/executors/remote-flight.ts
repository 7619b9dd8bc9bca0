/**
 * One run in a warm worker job (slurm-workers.ts): the messages and output of its child's three
 * connections, until its outcome is known. The child runs on another node, so unlike the local
 * warm worker's runs (warm-worker.ts) it is never signalled from here: its worker job is, or
 * asked to stop it (a cancel).
 */
import type net from 'node:net';
import { randomBytes } from 'node:crypto';
import {
  parseShimMessage,
  ProtocolError,
  type ChildAttach,
  type ShimMessage,
} from '../context/protocol.js';
import { outcomeOf, type RunOutcome, type RunRequest } from '../runs/run-request.js';
import type { ExecuteOptions, OutputSink } from './executor.js';
import { RunProgress, stoppedElsewhere } from './salvage.js';

const STDERR_TAIL_LINES = 30;

/** A run waiting for a worker, or in one. */
export interface Entry {
  req: RunRequest;
  onOutput: OutputSink | undefined;
  /** The caller's onVariable and cancel signal (ExecuteOptions). */
  opts: ExecuteOptions;
  /** Worker jobs that ended under this run. */
  lost: string[];
  resolve: (outcome: RunOutcome) => void;
}

/** One run in a worker: its child's three connections and messages, until its outcome is known. */
export class Flight {
  readonly token = randomBytes(16).toString('hex');
  readonly progress: RunProgress;
  final: Extract<ShimMessage, { kind: 'run_finished' | 'fatal' }> | undefined;
  exit: { code: number | null; signal: string | null } | undefined;
  failure: string | undefined;
  /** Why the run was cancelled (ExecuteOptions.signal), if it was. */
  cancelled: string | undefined;
  private readonly attached = new Set<ChildAttach['stream']>();
  private closedStreams = 0;
  private settled = false;
  stderrTail: string[] = [];

  constructor(
    readonly id: number,
    readonly entry: Entry,
    private readonly onDone: (flight: Flight) => void,
  ) {
    this.progress = new RunProgress(entry.opts.onVariable);
  }

  attach(stream: ChildAttach['stream'], socket: net.Socket): boolean {
    if (this.settled || this.attached.has(stream)) return false;
    this.attached.add(stream);
    socket.once('close', () => {
      this.closedStreams += 1;
      this.maybeDone();
    });
    return true;
  }

  onLine(stream: ChildAttach['stream'], line: string): void {
    if (stream !== 'channel') {
      if (stream === 'stderr') {
        this.stderrTail.push(line);
        if (this.stderrTail.length > STDERR_TAIL_LINES) this.stderrTail.shift();
      }
      this.entry.onOutput?.(stream, line);
      return;
    }
    if (line.trim() === '' || this.failure !== undefined) return;
    try {
      const message = parseShimMessage(line);
      this.progress.onMessage(message);
      if (message.kind === 'run_finished' || message.kind === 'fatal') this.final = message;
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      this.failure = `Python shim protocol error: ${err.message}`;
    }
  }

  childExited(exit: { code: number | null; signal: string | null }): void {
    this.exit = exit;
    this.maybeDone();
  }

  /** Whether the run reported its end, so that losing its worker now costs nothing. */
  get finished(): boolean {
    return this.final !== undefined;
  }

  private maybeDone(): void {
    if (this.closedStreams >= 3 && (this.exit !== undefined || this.final !== undefined)) this.done();
  }

  done(): void {
    if (this.settled) return;
    this.settled = true;
    this.onDone(this);
  }

  outcome(): RunOutcome {
    const detail = this.stderrTail.join('\n') || undefined;
    if (this.failure !== undefined) return { ok: false, reason: this.failure, detail };
    if (this.final && !(this.cancelled !== undefined && this.final.kind === 'fatal')) return outcomeOf(this.final, this.progress.reported);
    if (this.cancelled !== undefined) return stoppedElsewhere(this.progress, { reason: this.cancelled, detail });
    const how = this.exit?.signal ? `was killed by ${this.exit.signal}` : `exited with code ${this.exit?.code ?? 'unknown'}`;
    return { ok: false, reason: `the run's process in the worker job ${how} before it reported a result`, detail };
  }
}


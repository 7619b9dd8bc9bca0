/**
 * Decides what runs when. Pending work lives in runs.sqlite (job-store.ts); a p-queue bounds
 * how many jobs run at once (`concurrent_jobs`) and orders waiting runs, new data before
 * reprocessing. Per run, one job at a time: the raw and proc jobs of a run never overlap (one
 * writer per run HDF5 file), and a pending raw job goes before a pending proc job.
 *
 * The queue holds "do the next job of run R" tasks rather than jobs: a task looks up R's next
 * job only when it starts, so that a raw event arriving while R's proc job waits still goes
 * first, and a run woken twice costs one empty task at most.
 */
import PQueue from 'p-queue';
import type { RunEvent } from '../listener/events.js';
import type { Job, JobPriority, JobStore, SubmitOutcome } from './job-store.js';

export type JobResult =
  | {
      ok: true;
      summary: string;
      /**
       * The rest of the job, done outside the concurrency limit: a Slurm job for the run's
       * cluster variables, which may wait in the cluster's queue for hours. The queue slot is
       * freed at once; the run stays busy (no other job of it starts) and the job unfinished
       * until this settles, and its result is the job's.
       */
      remaining?: Promise<JobResult>;
    }
  | { ok: false; reason: string };

/** Does one job; the scheduler marks it done or failed when the handler (and its `remaining`) ends. */
export type JobHandler = (job: Job) => Promise<JobResult>;

export interface SchedulerEvents {
  started?: (job: Job) => void;
  finished?: (job: Job, result: JobResult, seconds: number) => void;
  /** The scheduler itself failed (the database could not be written, say). */
  error?: (err: Error) => void;
}

export interface SchedulerOptions {
  store: JobStore;
  handler: JobHandler;
  /** Jobs at once. */
  concurrency: number;
  /** Tries of a job that keeps being interrupted (the backend killed while it ran). */
  maxAttempts: number;
  events?: SchedulerEvents;
}

/** p-queue runs higher numbers first. */
const QUEUE_PRIORITY: Record<JobPriority, number> = { new: 1, reprocess: 0 };

function runKey(proposal: number, run: number): string {
  return `${proposal}/${run}`;
}

export class Scheduler {
  private readonly queue: PQueue;
  private readonly busy = new Set<string>();
  /** The `remaining` parts of jobs that have left the queue. */
  private readonly outstanding = new Set<Promise<void>>();
  /** Runs with a task waiting in the queue, and that task's queue priority. */
  private readonly waiting = new Map<string, number>();
  private stopped = false;

  constructor(private readonly opts: SchedulerOptions) {
    this.queue = new PQueue({ concurrency: Math.max(1, opts.concurrency) });
  }

  /** Jobs at once. */
  get concurrency(): number {
    return this.queue.concurrency;
  }

  /** Changes how many jobs run at once, from the next job that starts. */
  setConcurrency(n: number): void {
    if (n !== this.queue.concurrency) this.queue.concurrency = Math.max(1, n);
  }

  get store(): JobStore {
    return this.opts.store;
  }

  /**
   * Takes an event in: recorded (with whatever `alsoRecord` writes, in the same transaction)
   * before this returns, then scheduled.
   */
  submit(event: RunEvent, alsoRecord?: () => void): { outcome: SubmitOutcome; priority: JobPriority } {
    const result = this.opts.store.transaction(() => {
      alsoRecord?.();
      return this.opts.store.submit(event);
    });
    if (result.outcome !== 'merged') this.wake(event.proposal, event.run, result.priority);
    return result;
  }

  /** At start-up, before any event is taken: jobs left running by a backend that died are pending again. */
  recover(): { resumed: Job[]; abandoned: Job[] } {
    return this.opts.store.resumeInterrupted(this.opts.maxAttempts);
  }

  /** Schedules every run with pending work; returns how many there are. */
  schedulePending(): number {
    const runs = this.opts.store.pendingRuns();
    for (const { proposal, run, priority } of runs) this.wake(proposal, run, priority);
    return runs.length;
  }

  private wake(proposal: number, run: number, priority: JobPriority): void {
    if (this.stopped) return;
    const key = runKey(proposal, run);
    // A running job of this run wakes it again when it ends.
    if (this.busy.has(key)) return;
    const queuePriority = QUEUE_PRIORITY[priority];
    const queued = this.waiting.get(key);
    if (queued !== undefined && queued >= queuePriority) return;
    this.waiting.set(key, queuePriority);
    this.queue
      .add(() => this.runNext(proposal, run, queuePriority), { priority: queuePriority })
      .catch((err: unknown) => this.opts.events?.error?.(err as Error));
  }

  private async runNext(proposal: number, run: number, queuePriority: number): Promise<void> {
    // p-queue may start a task inside add(): let whoever woke the run finish first.
    await Promise.resolve();
    const key = runKey(proposal, run);
    if (this.waiting.get(key) === queuePriority) this.waiting.delete(key);
    if (this.stopped || this.busy.has(key)) return;
    const job = this.opts.store.claimNext(proposal, run);
    if (!job) return;
    this.busy.add(key);
    let rest: Promise<void> | undefined;
    try {
      ({ rest } = await this.execute(job));
    } finally {
      if (rest === undefined) this.release(proposal, run);
    }
    if (rest === undefined) return;
    // The queue slot is free again; the run stays busy until the rest of its job is done.
    this.outstanding.add(rest);
    void rest.finally(() => {
      this.outstanding.delete(rest);
      this.release(proposal, run);
    });
  }

  /** The run's job has ended: its next job, if any, may start. */
  private release(proposal: number, run: number): void {
    this.busy.delete(runKey(proposal, run));
    const next = this.opts.store.peek(proposal, run);
    if (next) this.wake(proposal, run, next.priority);
  }

  /**
   * Runs a job; `rest` is the part still going outside the queue, if the handler left one
   * (wrapped, since an async function would otherwise wait for it).
   */
  private async execute(job: Job): Promise<{ rest?: Promise<void> }> {
    this.opts.events?.started?.(job);
    const started = performance.now();
    const result = await settle(this.opts.handler(job));
    if (result.ok && result.remaining) {
      const rest = settle(result.remaining)
        .then((final) => this.finish(job, final, started))
        .catch((err: unknown) => this.opts.events?.error?.(err as Error));
      return { rest };
    }
    this.finish(job, result, started);
    return {};
  }

  private finish(job: Job, result: JobResult, started: number): void {
    // Stopped meanwhile: the job was cut short, and stays running in the database for the next start.
    if (this.stopped) return;
    const store = this.opts.store;
    if (result.ok) store.markDone(job);
    else store.markFailed(job, result.reason);
    this.opts.events?.finished?.(job, result, (performance.now() - started) / 1000);
  }

  /** Work running or waiting in this process. */
  get activity(): { running: number; waiting: number } {
    return { running: this.queue.pending + this.outstanding.size, waiting: this.queue.size };
  }

  /** Resolves once nothing runs or waits, in the queue or outside it. */
  async idle(): Promise<void> {
    await this.queue.onIdle();
    while (this.outstanding.size > 0) {
      await Promise.all(this.outstanding);
      await this.queue.onIdle();
    }
  }

  /**
   * Starts nothing more. Jobs still running are left as they are in the database (running), so
   * that the next start does them again.
   */
  stop(): void {
    this.stopped = true;
    this.queue.clear();
  }
}

/** A handler's result, with a thrown error as a failed job. */
async function settle(result: Promise<JobResult>): Promise<JobResult> {
  try {
    return await result;
  } catch (err) {
    return { ok: false, reason: `internal error: ${(err as Error).message}` };
  }
}

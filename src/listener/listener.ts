/**
 * The backend of one database directory: event sources feed the scheduler; each job runs the
 * context for one run (raw events: data="raw" variables, proc events: data="proc" ones) through
 * processRun, and amore.log says what arrived, what started, and how it ended.
 *
 * context.py is read afresh by every run, so an edit applies to the next run without a
 * restart; when the file has changed, the variable catalogue (titles, descriptions, tags) is
 * updated from it once before that run. A file that cannot load fails its runs, with the load
 * error in the log, until it is fixed. Settings are read again for every run as well
 * (live-settings.ts): a `db-config` change applies to the next run. `process_on` is read at each
 * run: with `slurm`, the run is processed in a Slurm job (executors/slurm-job.ts), concurrent_jobs
 * of them at once, waited for outside the scheduler's slots as a cluster job is.
 */
import { createHash } from 'node:crypto';
import PQueue from 'p-queue';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { formatProblem, viewOverflowWarning } from '../cli/commands/read-context.js';
import { CliError } from '../cli/errors.js';
import { describeContext } from '../context/describe.js';
import type { DatabaseDir } from '../database-dir.js';
import { numberSetting } from '../db/config-keys.js';
import type { DamnitDb } from '../db/database.js';
import type { RunEnvironment, RunExecutor } from '../executors/executor.js';
import { WarmWorkerExecutor } from '../executors/warm-worker.js';
import { SlurmJobExecutor } from '../executors/slurm-job.js';
import { SlurmWorkerPool } from '../executors/slurm-workers.js';
import type { SlurmJobEvent } from '../executors/slurm-run.js';
import { processPlace, SlurmSettingError, type ProcessPlace } from '../executors/slurm-settings.js';
import type { BackendLogger } from '../log.js';
import { startRun, type ProcessedRun } from '../runs/process-run.js';
import { loadRunEnvironment } from '../runs/run-environment.js';
import { summariseVariables, type RunRequest } from '../runs/run-request.js';
import type { Job } from '../scheduler/job-store.js';
import { JobStore } from '../scheduler/job-store.js';
import { describeClaim, ListenerLock } from '../scheduler/listener-claim.js';
import { directoryModes } from '../sharing.js';
import { Scheduler, type JobResult } from '../scheduler/scheduler.js';
import { plural } from '../text.js';
import { describeEvent, type EventSource, type RunEvent, type SourceNotice } from './events.js';
import { programName } from '../program-name.js';
import type { VariableInfo } from '../context/protocol.js';
import type { GuiUpdates } from '../updates/gui-updates.js';
import { chooseUpdateBroker } from '../updates/broker-choice.js';
import { JobAnnouncer } from './job-announcer.js';
import { LiveRunSettings } from './live-settings.js';
import { CancelWatcher, type CancelRequest } from '../scheduler/cancel-requests.js';
import { READY_FACT } from '../supervisor/health.js';
import { noteOutcome } from '../runs/failure-record.js';
import { appendJobOutput, ProcessLog, processingHeader } from '../runs/process-log.js';
import { describeFailure, processingEnding, variableFailures } from '../runs/run-report.js';

/** Tries of a run whose processing keeps being interrupted by the backend dying. */
export const MAX_ATTEMPTS = 3;

export interface ListenerOptions {
  dir: DatabaseDir;
  db: DamnitDb;
  logger: BackendLogger;
  /** Builds the sources once the proposal, where its data is, and the job store are known. */
  sources: (ctx: { proposal: number; proposalRoot: string; store: JobStore; dbId: string }) => EventSource[];
  /** How runs are executed on this machine; warm workers (as reprocess) unless given. */
  createExecutor?: (env: RunEnvironment) => RunExecutor;
  /** process_on slurm: each run's job when it is submitted, starts and ends (id, host, user). */
  onSlurmJob?: (event: SlurmJobEvent) => void;
  /** Where the GUI's update messages go; none are sent without it. */
  updates?: GuiUpdates;
  /** `listen --update-broker`: wins over the settings, which are read again for every run. */
  updateBrokerOption?: string;
}

export class Listener {
  /** Resolves when every source has ended and the work they gave is done (`listen --test`). */
  readonly finished: Promise<void>;
  private contextHash: string | null = null;
  /** The variables of context.py as last loaded; null while it cannot be loaded. */
  private variables: VariableInfo[] | null = null;
  private readonly warned = new Set<string>();
  /** Jobs running now (`<run>/<kind>`), to cancel them. */
  private readonly running = new Map<string, AbortController>();
  private cancelWatcher: CancelWatcher | null = null;
  private contextCheck: Promise<void> = Promise.resolve();
  /** process_on slurm: the runs whose jobs are submitted or waiting to be, concurrent_jobs at once. */
  private readonly slurmQueue = new PQueue({ concurrency: 1 });
  private slurmJobs: SlurmJobExecutor | undefined;
  private slurmWorkers: SlurmWorkerPool | undefined;
  private readonly announcer: JobAnnouncer;
  private stopping = false;

  private constructor(
    private readonly opts: ListenerOptions,
    private readonly proposal: number,
    private readonly settings: LiveRunSettings,
    private readonly lock: ListenerLock,
    private readonly scheduler: Scheduler,
    private readonly sources: EventSource[],
  ) {
    this.finished = Promise.all(sources.map((s) => s.ended)).then(() => scheduler.idle());
    this.announcer = new JobAnnouncer(opts.updates, () => chooseUpdateBroker(opts.db.metameta, opts.updateBrokerOption));
  }

  /** Claims the database, resumes unfinished work, and starts the sources. */
  static async start(opts: ListenerOptions): Promise<Listener> {
    const { db, dir, logger } = opts;
    const proposalValue = db.metameta.get('proposal');
    if (proposalValue === null || proposalValue === undefined) {
      throw new CliError(`no proposal number set: set one with '${programName()} proposal N'`);
    }
    const proposal = Number(proposalValue);
    const store = new JobStore(db.connection);
    const lock = ListenerLock.acquire(dir, store, directoryModes(dir.root));
    if (!(lock instanceof ListenerLock)) {
      const who = lock.heldBy ? ` (${describeClaim(lock.heldBy)})` : '';
      throw new CliError(
        `another backend${who} is listening for this database; ` +
          `stop it first (supervisorctl -c supervisord.conf stop damnit, or ${programName()} backend stop)`,
      );
    }
    try {
      const env = await loadRunEnvironment(dir, db);
      const settings = new LiveRunSettings(
        db,
        env,
        opts.createExecutor ?? ((e) => new WarmWorkerExecutor(e, { onWorkerOutput: (_stream, line) => logger.info(`worker> ${line}`) })),
        (message) => logger.info(message),
      );
      const concurrency = Math.max(1, Math.min(numberSetting(db.metameta, 'concurrent_jobs'), os.availableParallelism()));
      let listener: Listener | undefined;
      const scheduler = new Scheduler({
        store,
        concurrency,
        maxAttempts: MAX_ATTEMPTS,
        handler: (job) => (listener as Listener).process(job),
        events: {
          started: (job) => logger.info({ run: job.run, data: job.kind }, job.attempts > 1 ? `started (attempt ${job.attempts})` : 'started'),
          finished: (job, result, seconds) => {
            const runLog = logger.child({ run: job.run, data: job.kind });
            if (result.ok) runLog.info(`done in ${seconds.toFixed(1)} s: ${result.summary}`);
            else runLog.error(`FAILED after ${seconds.toFixed(1)} s: ${result.reason}`);
          },
          error: (err) => logger.error(`scheduler: ${err.message}`),
        },
      });
      const sources = opts.sources({ proposal, proposalRoot: env.proposalPath, store, dbId: String(db.metameta.get('db_id') ?? '') });
      listener = new Listener(opts, proposal, settings, lock, scheduler, sources);
      logger.info(
        `backend started for proposal ${proposal} in ${dir.root} (pid ${process.pid} on ${os.hostname()}, ` +
          `events from ${sources.map((s) => s.name).join(', ')}, ${plural(concurrency, 'run')} at once, python ${env.python})`,
      );
      await listener.refreshContext();
      const recovered = scheduler.recover();
      for (const job of recovered.resumed) {
        logger.warn({ run: job.run, data: job.kind }, 'was interrupted when the backend stopped: processing it again');
      }
      for (const job of recovered.abandoned) {
        logger.error({ run: job.run, data: job.kind }, `interrupted ${plural(job.attempts, 'time')}: given up (reprocess it by hand)`);
      }
      try {
        for (const source of sources) await source.start((event) => listener?.take(event), listener.notice(source));
      } catch (err) {
        // Nothing has started yet: the pending work waits for a backend whose sources work.
        await listener.stop();
        throw err;
      }
      listener.cancelWatcher = new CancelWatcher(db.connection, (request) => (listener as Listener).cancel(request), (err) =>
        logger.warn(`cancel requests: ${err.message}`),
      );
      // For `backend start` and `backend status`: this backend got as far as its sources.
      store.setFact(READY_FACT, JSON.stringify({ pid: process.pid, at: new Date().toISOString() }));
      const pending = scheduler.schedulePending();
      if (pending > 0) logger.info(`${plural(pending, 'run')} with work pending`);
      return listener;
    } catch (err) {
      lock.release();
      throw err;
    }
  }

  private notice(source: EventSource): SourceNotice {
    return (level, message) => this.opts.logger[level](`${source.name}: ${message}`);
  }

  /** An event from a source: recorded and scheduled, or ignored when it is for another proposal. */
  take(event: RunEvent): void {
    const { logger, db } = this.opts;
    if (event.proposal !== this.proposal) {
      // Kafka carries every proposal's events: only worth a word when someone typed it.
      logger[event.source === 'kafka' ? 'debug' : 'info'](
        `ignored ${describeEvent(event)} of proposal ${event.proposal} (${event.source}): this database is for proposal ${this.proposal}`,
      );
      return;
    }
    if (this.stopping) throw new Error('the backend is stopping');
    const { outcome } = this.scheduler.submit(event, () => db.ensureRun(event.proposal, event.run, { addedAt: event.time }));
    const runLog = logger.child({ run: event.run, data: event.kind });
    if (outcome !== 'merged') this.announcer.jobQueued(event);
    if (outcome === 'queued') runLog.info(`arrived (${event.source})`);
    else if (outcome === 'requeued') runLog.info(`arrived again (${event.source}): queued for reprocessing`);
    else runLog.debug(`arrived again (${event.source}) while queued or running: merged`);
  }

  /**
   * One job: the context's variables for the event's data, recorded as processRun does. A Slurm
   * job for the run's cluster variables is waited for outside the concurrency limit (`remaining`).
   */
  private async process(job: Job): Promise<JobResult> {
    const concurrency = this.settings.concurrency();
    if (concurrency instanceof Error) this.warnOnce(`${concurrency.message}; keeping ${this.scheduler.concurrency} runs at once`);
    else if (concurrency !== this.scheduler.concurrency) {
      this.opts.logger.info(`settings changed (concurrent_jobs: ${plural(concurrency, 'run')} at once): from the next run on`);
      this.scheduler.setConcurrency(concurrency);
    }
    let run: Awaited<ReturnType<LiveRunSettings['forNextRun']>>;
    try {
      run = await this.settings.forNextRun();
    } catch (err) {
      // The run cannot start as the settings are; the backend goes on, and the next run reads them again.
      this.announcer.jobDropped(job);
      return { ok: false, reason: `not started: ${(err as Error).message}` };
    }
    let place: ProcessPlace;
    try {
      place = processPlace(this.opts.db.metameta);
    } catch (err) {
      run.release();
      if (!(err instanceof SlurmSettingError)) throw err;
      return { ok: false, reason: err.message };
    }
    try {
      if (place === 'slurm') {
        // The job waits in Slurm's queue, not in a slot of this machine: concurrent_jobs (read now)
        // bounds the jobs, whatever this machine's cores.
        this.slurmQueue.concurrency = Math.max(1, numberSetting(this.opts.db.metameta, 'concurrent_jobs'));
        const executor = this.slurmExecutor(run.env);
        const remaining = this.slurmQueue.add(() => this.processWith(job, run.env, executor, run.release, true));
        return { ok: true, summary: '', remaining: remaining.then((r) => (r.ok && r.remaining ? r.remaining : r)) };
      }
      return await this.processWith(job, run.env, run.executor, run.release);
    } catch (err) {
      run.release();
      throw err;
    }
  }

  /**
   * process_on slurm: warm worker jobs when slurm_worker_jobs is 1, else one job per run (both
   * read at each run); each executor made at its first run and kept.
   */
  private slurmExecutor(env: RunEnvironment): RunExecutor {
    const { db, logger } = this.opts;
    if (numberSetting(db.metameta, 'slurm_worker_jobs') !== 0) {
      this.slurmWorkers ??= new SlurmWorkerPool(env, {
        settings: db.metameta,
        onJobEvent: (event) => {
          this.opts.onSlurmJob?.(event);
          this.announcer.slurmJobEvent(event);
        },
        onNote: (note) => logger.info(note),
      });
      return this.slurmWorkers;
    }
    this.slurmJobs ??= new SlurmJobExecutor(env, {
      settings: db.metameta,
      onSubmitted: (req, jobId, log) => logger.child({ run: req.run }).info(`submitted as Slurm job ${jobId} (output in ${log})`),
      onJobEvent: (event) => {
          this.opts.onSlurmJob?.(event);
          this.announcer.slurmJobEvent(event);
        },
    });
    return this.slurmJobs;
  }

  /** `cancel`: the request's runs taken off the queue, or stopped while they run; says what it did. */
  private cancel(request: CancelRequest): { run: number; what: string }[] {
    if (request.proposal !== this.proposal) return [];
    const reason = `cancelled by ${request.requestedBy}`;
    const store = this.scheduler.store;
    const running = [...this.running.keys()].map((key) => Number(key.split('/')[0]));
    const runs = request.run === null ? [...new Set([...store.pendingRunNumbers(this.proposal), ...running])] : [request.run];
    const answers: { run: number; what: string }[] = [];
    for (const run of runs) {
      const runLog = this.opts.logger.child({ run });
      for (const kind of store.cancelPending(this.proposal, run, reason)) {
        this.announcer.jobDropped({ run, kind });
        const log = ProcessLog.open(this.opts.dir, run, this.proposal, (m) => this.warnOnce(m));
        log?.line(`\n----- Cancelled the queued ${kind} processing of r${run} (p${this.proposal}): ${reason}`);
        log?.close();
        runLog.info(`${kind} processing taken off the queue: ${reason}`);
        answers.push({ run, what: `the backend's queued ${kind} processing taken off its queue` });
      }
      for (const kind of ['raw', 'proc'] as const) {
        const controller = this.running.get(`${run}/${kind}`);
        if (!controller || controller.signal.aborted) continue;
        runLog.info(`${kind} processing being stopped: ${reason}`);
        controller.abort(reason);
        answers.push({ run, what: `the backend's running ${kind} processing stopped` });
      }
    }
    return answers;
  }

  /** A job with the settings read for it; `release` once it is over, cluster part included. */
  private async processWith(job: Job, env: RunEnvironment, executor: RunExecutor, release: () => void, inSlurm = false): Promise<JobResult> {
    const key = `${job.run}/${job.kind}`;
    const controller = new AbortController();
    this.running.set(key, controller);
    const done = release;
    release = () => {
      if (this.running.get(key) === controller) this.running.delete(key);
      done();
    };
    await this.refreshContext();
    const req: RunRequest = { proposal: job.proposal, run: job.run, runData: job.kind, mock: false, match: [], cluster: 'include' };
    const runLog = this.opts.logger.child({ run: job.run, data: job.kind });
    const gui = this.announcer.jobStarting(job, this.variables, inSlurm);
    const began = performance.now();
    const processLog = ProcessLog.open(this.opts.dir, job.run, job.proposal, (m) => this.warnOnce(m));
    processLog?.write(processingHeader(job.run, job.proposal));
    let started: Awaited<ReturnType<typeof startRun>>;
    try {
      started = await startRun(req, {
        db: this.opts.db,
        executor,
        env,
        onOutput: (stream, line) => {
          runLog.info({ stream }, line);
          processLog?.line(line);
        },
        onClusterJob: (jobId, logPath) => {
          runLog.info(`cluster variables: Slurm job ${jobId} submitted, output in ${logPath}`);
          processLog?.line(`----- cluster variables: Slurm job ${jobId} submitted, output in ${logPath}`);
          gui?.clusterJob(jobId);
        },
        onRecorded: (results) => this.opts.updates?.valuesRecorded(job.proposal, job.run, results),
        signal: controller.signal,
      });
    } catch (err) {
      processLog?.write(processingEnding({ ok: false, reason: `internal error: ${(err as Error).message}` }, (performance.now() - began) / 1000));
      processLog?.close();
      release();
      throw err;
    } finally {
      gui?.localDone();
    }
    const result = (outcome: ProcessedRun): JobResult => {
      const part = outcome.cluster;
      if (processLog && part?.jobId && part.logPath) appendJobOutput(processLog, part.jobId, part.logPath);
      processLog?.write(processingEnding(outcome, (performance.now() - began) / 1000));
      processLog?.close();
      noteOutcome(this.opts.db.connection, job.proposal, job.run, job.kind, outcome);
      if (outcome.ok) {
        for (const failure of variableFailures(outcome.variables)) runLog.warn(describeFailure(failure));
        return { ok: true, summary: summariseVariables(outcome.variables) };
      }
      if (outcome.detail) runLog.debug(outcome.detail);
      return { ok: false, reason: outcome.reason };
    };
    if (started.rest === undefined) {
      release();
      return result(started.local);
    }
    runLog.info(`local part recorded: ${summariseVariables(started.local.variables)}; waiting for the Slurm job of its cluster variables`);
    return { ok: true, summary: '', remaining: started.rest.then(result).finally(() => {
        release();
        gui?.clusterDone();
      }) };
  }

  /** A problem said once per backend (a process log directory that cannot be written, say). */
  private warnOnce(message: string): void {
    const key = message.replace(/r\d+-p\d+\.out/, '');
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.opts.logger.warn(message);
  }

  /** When context.py has changed, updates the variable catalogue from it (once per change). */
  private refreshContext(): Promise<void> {
    this.contextCheck = this.contextCheck.then(async () => {
      const { dir, db, logger } = this.opts;
      const text = await readFile(dir.contextFile).catch(() => null);
      // Another context_python may load the same file differently.
      const hash = `${text === null ? 'missing' : createHash('sha256').update(text).digest('hex')} ${this.settings.env.python}`;
      if (hash === this.contextHash) return;
      this.contextHash = hash;
      const result = await describeContext(dir, this.settings.env.python, {
        timeoutMs: numberSetting(db.metameta, 'context_load_timeout') * 1000,
        onOutput: (_stream, line) => logger.info(`context.py> ${line}`),
      }).catch((err: Error) => ({ ok: false as const, problems: [], traceback: null, error: err.message }));
      this.variables = result.ok ? result.context.variables : null;
      if (result.ok) {
        db.upsertVariables(result.context.variables);
        const overflow = viewOverflowWarning(db);
        if (overflow !== null) logger.warn(overflow);
        for (const problem of result.context.static_problems) logger.warn(`context.py: ${formatProblem(problem, dir.root)}`);
        logger.info(`context.py loaded: ${plural(result.context.variables.length, 'variable')}`);
      } else {
        const problems = 'error' in result ? [result.error] : result.problems.map((p) => formatProblem(p, dir.root));
        logger.error(`context.py cannot be loaded; runs fail until it is fixed:\n${problems.join('\n')}`);
      }
    });
    return this.contextCheck;
  }

  /** What the backend is doing now, for the log. */
  get activity(): { running: number; waiting: number } {
    return this.scheduler.activity;
  }

  /**
   * Stops taking events and starting runs. Runs still going are cut short when this process
   * exits and are done again at the next start.
   */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.scheduler.stop();
    this.slurmQueue.clear();
    this.cancelWatcher?.close();
    await Promise.all(this.sources.map((s) => s.close().catch(() => undefined)));
    await this.settings.close();
    await this.slurmJobs?.close();
    await this.slurmWorkers?.close();
    this.lock.release();
  }
}

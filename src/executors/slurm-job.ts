/**
 * process_on slurm: each run processed in its own Slurm job `r<R>-p<P>-damnit`, as the reference
 * backend does, with `noncluster_cpus`/`noncluster_mem`, `slurm_time` and the partition rule, its
 * output appended to `process_logs/r<R>-p<P>.out`. The settings are read at each run, so
 * `db-config` applies to the next one. A cancel (ExecuteOptions.signal) scancels the run's job.
 * Records nothing: processRun does, as for every executor.
 */
import type { SettingsSource } from '../db/config-keys.js';
import type { RunOutcome, RunRequest } from '../runs/run-request.js';
import { cancelReason, type ExecuteOptions, type OutputSink, type RunEnvironment, type RunExecutor } from './executor.js';
import { RunProgress, stoppedElsewhere } from './salvage.js';
import { SlurmError, SlurmUnavailableError } from './slurm.js';
import { runProcessJob, shownPath, type SlurmJobEvent } from './slurm-run.js';
import { jobResources, PROCESS_HERE_HINT, slurmSettings } from './slurm-settings.js';

export interface SlurmJobExecutorOptions {
  /** The database's settings (db.metameta), read at each run. */
  settings: SettingsSource;
  /** A run's job was submitted: its id and log file (shown relative to the database directory). */
  onSubmitted?: (req: RunRequest, jobId: string, shownLog: string) => void;
  onJobEvent?: (event: SlurmJobEvent) => void;
  /** Time between two looks at Slurm's queue; 2 s by default. */
  pollMs?: number;
  env?: Record<string, string | undefined>;
}

export class SlurmJobExecutor implements RunExecutor {
  private readonly stopping = new AbortController();

  constructor(
    private readonly env: RunEnvironment,
    private readonly opts: SlurmJobExecutorOptions,
  ) {}

  async execute(req: RunRequest, _onOutput?: OutputSink, opts?: ExecuteOptions): Promise<RunOutcome> {
    const cancel = opts?.signal;
    const progress = new RunProgress(opts?.onVariable);
    try {
      const job = await runProcessJob(req, this.env, {
        settings: slurmSettings(this.opts.settings),
        resources: jobResources(this.opts.settings),
        pollMs: this.opts.pollMs,
        env: this.opts.env,
        // Either stops following and scancels the job (followTasks does it on abort).
        signal: cancel ? AbortSignal.any([this.stopping.signal, cancel]) : this.stopping.signal,
        onSubmitted: (jobId, logPath) => this.opts.onSubmitted?.(req, jobId, shownPath(this.env.dir, logPath)),
        onJobEvent: this.opts.onJobEvent,
        onMessage: (message) => progress.onMessage(message),
      });
      return job.outcome;
    } catch (err) {
      if (cancel?.aborted && !this.stopping.signal.aborted) return stoppedElsewhere(progress, { reason: cancelReason(cancel) });
      if (!(err instanceof SlurmError)) throw err;
      const hint = err instanceof SlurmUnavailableError ? PROCESS_HERE_HINT : '';
      return { ok: false, reason: `${err.message}${hint}` };
    }
  }

  /** Stops following the jobs still running; they are cancelled (followTasks does it on abort). */
  async close(): Promise<void> {
    this.stopping.abort(new Error('the executor was closed'));
  }
}

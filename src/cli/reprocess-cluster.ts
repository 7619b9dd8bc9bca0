/**
 * The Slurm side of `reprocess`: what a run's cluster part adds to its progress line, and
 * `reprocess --cluster`, which fans the runs out as one Slurm array job.
 */
import type { DamnitDb } from '../db/database.js';
import type { RunEnvironment } from '../executors/executor.js';
import { slurmArrayJobName } from '../executors/slurm.js';
import { shownPath } from '../executors/slurm-run.js';
import { reprocessAsArray } from '../runs/cluster.js';
import type { ProcessedRun } from '../runs/process-run.js';
import { describeRun, type RunRequest } from '../runs/run-request.js';
import { CliError } from './errors.js';
import type { ProgressReporter } from './progress.js';
import { plural } from '../text.js';
import type { SlurmRunResult } from '../executors/slurm-run.js';
import { noteOutcome } from '../runs/failure-record.js';
import { appendJobOutput, ProcessLog, processingHeader } from '../runs/process-log.js';
import { describeFailure, processingEnding, variableFailures } from '../runs/run-report.js';
import type { GuiUpdates } from '../updates/gui-updates.js';

/** `; cluster variables: Slurm job 17` for a run whose cluster part went well; '' without one. */
export function clusterNote(outcome: ProcessedRun): string {
  const part = outcome.cluster;
  if (!part?.ok) return '';
  return part.where === 'slurm' ? `; cluster variables: Slurm job ${part.jobId}` : '; cluster variables: here (no Slurm)';
}

/** The line shown when a run's cluster job has been submitted. */
export function clusterJobNote(db: DamnitDb, req: Pick<RunRequest, 'proposal' | 'run'>, jobId: string, logPath: string): string {
  return `${describeRun(req)}: cluster variables submitted as Slurm job ${jobId} (output in ${shownPath(db.dir, logPath)})`;
}

export interface ArrayReprocessOptions {
  db: DamnitDb;
  env: RunEnvironment;
  maxConcurrent: number;
  /** process_on slurm (see ArrayReprocessDeps.processOnSlurm); else `reprocess --cluster`. */
  processOnSlurm: boolean;
  progress: ProgressReporter;
  debug: boolean;
  /** Summary of a successful run, e.g. `11 variables, 1 error`. */
  describeResults: (outcome: Extract<ProcessedRun, { ok: true }>) => string;
  /** DAMNIT's GUI hears of each task: PENDING once submitted, its values, finished. */
  updates?: GuiUpdates;
}

/** A task's process log: a header naming its job, the job's output, how it ended. Problems are said once. */
function taskProcessLog(db: DamnitDb, proposal: number, progress: ProgressReporter): (run: number, task: SlurmRunResult, seconds: number) => void {
  let problemSaid = false;
  return (run, task, seconds) => {
    const log = ProcessLog.open(db.dir, run, proposal, (message) => {
      if (!problemSaid) progress.note(`warning: ${message}`);
      problemSaid = true;
    });
    if (!log) return;
    // A job of process_on slurm writes its output to the process log itself; an array task to slurm_logs/.
    if (task.logPath !== log.file) {
      log.write(processingHeader(run, proposal, { slurmJobId: task.jobId, slurmCluster: null }));
      if (task.logPath) appendJobOutput(log, task.jobId, task.logPath);
    }
    log.write(processingEnding(task.outcome, seconds));
    log.close();
  };
}

/**
 * Runs `reqs` as the tasks of one Slurm array job and reports each as it ends. Ctrl-C (or
 * SIGTERM) cancels the array; runs that had finished stay recorded. Returns how many failed.
 */
export async function reprocessOnCluster(reqs: RunRequest[], opts: ArrayReprocessOptions): Promise<number> {
  const proposal = reqs[0]?.proposal;
  if (proposal === undefined) return 0;
  const interrupted = new AbortController();
  const interrupt = (signal: NodeJS.Signals): void => interrupted.abort(signal);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, interrupt);
  const startedAt = new Map<number, number>();
  let submittedAt = performance.now();
  let arrayJobId: string | undefined;
  let failed = 0;
  const writeProcessLog = taskProcessLog(opts.db, proposal, opts.progress);
  const processingIds = new Map<number, string>();
  try {
    await reprocessAsArray(reqs, {
      db: opts.db,
      env: opts.env,
      maxConcurrent: opts.maxConcurrent,
      processOnSlurm: opts.processOnSlurm,
      signal: interrupted.signal,
      onClusterJob: (run, jobId, logPath) => opts.progress.note(clusterJobNote(opts.db, { proposal, run }, jobId, logPath)),
      onSubmitted: (jobId) => {
        arrayJobId = jobId;
        submittedAt = performance.now();
        for (const req of reqs) {
          const of = { proposal: req.proposal, run: req.run, data: req.runData };
          const id = opts.updates?.processingSubmitted(of, { cluster: null, jobId: `${jobId}_${req.run}` });
          if (id !== undefined) processingIds.set(req.run, id);
        }
        console.log(
          `Submitted Slurm array job ${jobId} (${slurmArrayJobName(proposal)}): ` +
            `${plural(reqs.length, 'run')}, at most ${opts.maxConcurrent} at once`,
        );
      },
      onStarted: (run) => {
        startedAt.set(run, performance.now());
        opts.progress.started(describeRun({ proposal, run }));
      },
      onFinished: (run, outcome, task) => {
        const label = describeRun({ proposal, run });
        const seconds = (performance.now() - (startedAt.get(run) ?? submittedAt)) / 1000;
        writeProcessLog(run, task, seconds);
        noteOutcome(opts.db.connection, proposal, run, 'all', outcome);
        if (outcome.ok) opts.updates?.valuesRecorded(proposal, run, outcome);
        const processingId = processingIds.get(run);
        if (processingId !== undefined) opts.updates?.processingFinished(processingId);
        if (outcome.ok) {
          const log = task.logPath ? `; output in ${shownPath(opts.db.dir, task.logPath)}` : '';
          opts.progress.finished({ label, ok: true, detail: `${opts.describeResults(outcome)} (Slurm job ${task.jobId}${log}${clusterNote(outcome)})`, seconds });
          for (const failure of variableFailures(outcome.variables)) opts.progress.note(describeFailure(failure, run));
        } else {
          failed += 1;
          opts.progress.finished({ label, ok: false, detail: outcome.reason, seconds });
          if (opts.debug && outcome.detail) opts.progress.note(outcome.detail);
        }
      },
    });
  } catch (err) {
    if (!interrupted.signal.aborted) throw err;
    const which = arrayJobId ? `cancelled Slurm array job ${arrayJobId}` : 'nothing was submitted';
    throw new CliError(`interrupted (${String(interrupted.signal.reason)}): ${which}; runs that had finished are recorded`, 130);
  } finally {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) process.off(signal, interrupt);
  }
  return failed;
}

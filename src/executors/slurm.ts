/**
 * Submitting work to Slurm and following it to its end (contract section 6, docs/slurm.md).
 *
 * Every Slurm command is started with an argument vector; no user text (variable names, paths,
 * settings) is ever parsed by a shell. The job's command reaches the compute node through a
 * fixed job script whose only line is `exec "$@"`: sbatch hands the script its arguments
 * verbatim, so the command runs exactly as given.
 *
 * This module follows jobs (waitForJob, queueState, jobHost) and cancels them; its parts are
 * slurm-submit.ts (sbatch), slurm-commands.ts (running one Slurm command),
 * slurm-job-records.ts (job states, squeue/sacct/scontrol records) and slurm-log-paths.ts (job
 * names, log paths). Its importers get all of them from here.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { requireJobId, runSlurmCommand, type SlurmCommandOptions, slurmErrorText } from './slurm-commands.js';
import { SlurmError, SlurmUnavailableError } from './slurm-errors.js';
import {
  type FinalState,
  isTerminalState,
  type JobRecord,
  parseSacct,
  parseScontrolJobs,
  parseSqueue,
} from './slurm-job-records.js';

export type { SlurmCommandOptions } from './slurm-commands.js';
export { SlurmError, SlurmUnavailableError } from './slurm-errors.js';
export {
  type FinalState,
  isTerminalState,
  type JobRecord,
  parseSacct,
  parseScontrolJobs,
  parseSqueue,
  TERMINAL_STATES,
  type TerminalState,
} from './slurm-job-records.js';
export {
  processArrayLogPattern,
  processLogFile,
  processLogPattern,
  slurmArrayJobName,
  slurmArrayLogPattern,
  slurmJobName,
  slurmLogFile,
  slurmLogPattern,
  slurmWorkerLogFile,
  slurmWorkerLogPattern,
} from './slurm-log-paths.js';
export {
  type ArraySpec,
  DEFAULT_SLURM_TIME,
  type JobSpec,
  sbatchArgs,
  submitJob,
  type SubmittedJob,
} from './slurm-submit.js';

/** Cancels a job or array (or one array task, `<id>_<index>`). */
export async function cancelJob(jobId: string, opts: SlurmCommandOptions = {}): Promise<void> {
  const result = await runSlurmCommand('scancel', [requireJobId(jobId)], opts);
  if (result.exitCode !== 0) {
    throw new SlurmError(`could not cancel Slurm job ${jobId}: ${slurmErrorText(result.stderr)}`);
  }
}

/** The node a running job is on; null when Slurm does not say (it has ended, or squeue failed). */
export async function jobHost(jobId: string, opts: SlurmCommandOptions = {}): Promise<string | null> {
  try {
    const result = await runSlurmCommand('squeue', ['--noheader', '--jobs', requireJobId(jobId), '--format=%N'], opts);
    const node = result.exitCode === 0 ? result.stdout.trim() : '';
    return node === '' ? null : node;
  } catch {
    return null;
  }
}

/** `PENDING, reason PartitionTimeLimit`: a queued job's state in words; null when it is not queued. */
export async function queueState(jobId: string, opts: SlurmCommandOptions = {}): Promise<string | null> {
  try {
    const result = await runSlurmCommand('squeue', ['--noheader', '--jobs', requireJobId(jobId), '--format=%i|%T|%r'], opts);
    const record = result.exitCode === 0 ? parseSqueue(result.stdout)[0] : undefined;
    return record ? `${record.state}${record.reason ? `, reason ${record.reason}` : ''}` : null;
  } catch {
    return null;
  }
}

export interface JobOutcome {
  jobId: string;
  state: FinalState;
  exitCode: number | null;
  signal: number | null;
  reason: string | null;
  /** For an array: every task, in index order. The array's state is its first unsuccessful task's. */
  tasks?: JobOutcome[];
}

export interface WaitOptions extends SlurmCommandOptions {
  /** Time between two looks at the queue; 2 s by default. */
  pollMs?: number;
  /** Ends the wait (rejecting with the signal's reason); the job itself keeps running. */
  signal?: AbortSignal;
}

/** The job's entries still in the queue (pending, running, completing...). */
async function queuedRecords(jobId: string, opts: SlurmCommandOptions): Promise<JobRecord[]> {
  const result = await runSlurmCommand('squeue', ['--noheader', '--array', `--jobs=${jobId}`, '--format=%i|%T|%r'], opts);
  if (result.exitCode === 0) return parseSqueue(result.stdout);
  // A job that has left the controller's memory is an "invalid job id" to squeue.
  if (/invalid job id/i.test(result.stderr)) return [];
  throw new SlurmError(`squeue failed for job ${jobId}: ${slurmErrorText(result.stderr)}`);
}

/**
 * Final records from accounting (sacct), or, where there is no accounting database, from the
 * controller's memory (scontrol), which keeps finished jobs for a few minutes (MinJobAge).
 */
async function finishedRecords(jobId: string, opts: SlurmCommandOptions): Promise<JobRecord[]> {
  const sacct = await runSlurmCommand(
    'sacct',
    ['--noheader', '--parsable2', '--allocations', `--jobs=${jobId}`, '--format=JobID,State,ExitCode'],
    opts,
  ).catch((err: unknown) => {
    if (err instanceof SlurmUnavailableError) return null;
    throw err;
  });
  if (sacct && sacct.exitCode === 0) {
    const records = parseSacct(sacct.stdout);
    if (records.length > 0) return records;
  }
  const scontrol = await runSlurmCommand('scontrol', ['--oneliner', 'show', 'job', jobId], opts);
  if (scontrol.exitCode === 0) return parseScontrolJobs(scontrol.stdout);
  if (/invalid job id/i.test(scontrol.stderr)) return [];
  throw new SlurmError(`scontrol failed for job ${jobId}: ${slurmErrorText(scontrol.stderr)}`);
}

function taskIndex(jobId: string): number {
  return Number(jobId.split('_')[1] ?? -1);
}

function toOutcome(record: JobRecord): JobOutcome {
  return {
    jobId: record.jobId,
    state: isTerminalState(record.state) ? record.state : 'UNKNOWN',
    exitCode: record.exitCode,
    signal: record.signal,
    reason: record.reason,
  };
}

function summarise(jobId: string, records: JobRecord[]): JobOutcome {
  const isArrayTask = (r: JobRecord) => r.jobId.startsWith(`${jobId}_`);
  const tasks = records.filter(isArrayTask);
  if (jobId.includes('_') || tasks.length === 0) {
    const own = records.find((r) => r.jobId === jobId);
    return own ? toOutcome(own) : { jobId, state: 'UNKNOWN', exitCode: null, signal: null, reason: null };
  }
  const outcomes = tasks.map(toOutcome).sort((a, b) => taskIndex(a.jobId) - taskIndex(b.jobId));
  const worst = outcomes.find((t) => t.state !== 'COMPLETED') ?? outcomes[0]!;
  return { ...worst, jobId, tasks: outcomes };
}

/** How many looks at a job that neither the queue nor the records know before calling it UNKNOWN. */
const UNKNOWN_AFTER_POLLS = 3;

/**
 * Follows a job (or a whole array) until Slurm reports it ended: squeue while it is queued or
 * running, then sacct, or scontrol where sacct has no accounting database to read.
 */
export async function waitForJob(jobId: string, opts: WaitOptions = {}): Promise<JobOutcome> {
  requireJobId(jobId);
  const pollMs = opts.pollMs ?? 2000;
  let unseen = 0;
  for (;;) {
    opts.signal?.throwIfAborted();
    const queued = await queuedRecords(jobId, opts);
    if (!queued.some((r) => !isTerminalState(r.state))) {
      const finished = await finishedRecords(jobId, opts);
      const allEnded = finished.length > 0 && finished.every((r) => isTerminalState(r.state));
      if (allEnded) return summarise(jobId, finished);
      // Neither knows it: purged long ago, or not yet visible in accounting. Look a few more times.
      if (finished.length === 0 && queued.length === 0 && ++unseen >= UNKNOWN_AFTER_POLLS) {
        return summarise(jobId, []);
      }
    }
    try {
      await sleep(pollMs, undefined, { signal: opts.signal });
    } catch (err) {
      // Reject with the caller's reason rather than a generic AbortError.
      opts.signal?.throwIfAborted();
      throw err;
    }
  }
}

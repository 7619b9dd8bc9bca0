/**
 * Following the tasks of a submitted Slurm job to their ends (slurm-run.ts): each task's channel
 * file is read until its final message (run_finished or fatal) arrives, and Slurm is asked how a
 * job ended only when that message never comes.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { ShimMessage } from '../context/protocol.js';
import type { DatabaseDir } from '../database-dir.js';
import { outcomeFromMessages, type RunOutcome } from '../runs/run-request.js';
import { readChannelFile } from './slurm-channel-files.js';
import { jobEndReason, shownPath } from './slurm-job-reports.js';
import type { JobResources, SlurmSettings } from './slurm-settings.js';
import { cancelJob, waitForJob, type FinalState, type JobOutcome, type SlurmCommandOptions } from './slurm.js';

/** How often channel files are read while jobs run: reading a small file costs next to nothing. */
const CHANNEL_POLL_MS = 250;

export interface SlurmRunOptions extends SlurmCommandOptions {
  settings: SlurmSettings;
  /** CPUs and memory of each job (process_on slurm); Slurm's defaults when unset. */
  resources?: JobResources;
  /** Time between two looks at Slurm's queue (waitForJob); 2 s by default. */
  pollMs?: number;
  /** Stops following: jobs still running are cancelled, and the call rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** How one run ended in Slurm. */
export interface SlurmRunResult {
  run: number;
  /** The job, or for an array task `<array id>_<run>`. */
  jobId: string;
  /** Its output; null when Slurm never started it (so no file was written). */
  logPath: string | null;
  /** Slurm's final state; null when the run reported its end itself and Slurm was not asked. */
  state: FinalState | null;
  outcome: RunOutcome;
}

export interface FollowedTask {
  run: number;
  /** `<job id>` for a single job, `<array id>_<run>` for an array task. */
  jobId: string;
  channel: string;
  logPath: () => string | null;
  started: boolean;
  done: boolean;
  /** How many of its channel's messages were read before. */
  seen?: number;
}

export interface FollowHooks {
  onStarted?: (run: number) => void;
  /** Each of the run's messages, as read from its channel file. */
  onMessage?: (message: ShimMessage) => void;
  onFinished: (result: SlurmRunResult) => void;
}

/**
 * Reads the tasks' channel files until every task has reported its end, or, for those that
 * never do, until Slurm says the job ended. Each task is handed to `onFinished` as soon as its
 * end is known.
 */
export async function followTasks(
  jobId: string,
  tasks: FollowedTask[],
  dir: DatabaseDir,
  opts: SlurmRunOptions,
  hooks: FollowHooks,
): Promise<void> {
  const stopWaiting = new AbortController();
  const signals = opts.signal ? [opts.signal, stopWaiting.signal] : [stopWaiting.signal];
  let jobEnd: JobOutcome | Error | undefined;
  const waiting = waitForJob(jobId, { env: opts.env, pollMs: opts.pollMs, signal: AbortSignal.any(signals) }).then(
    (outcome) => {
      jobEnd = outcome;
    },
    (err: unknown) => {
      jobEnd = err instanceof Error ? err : new Error(String(err));
    },
  );

  const finish = (task: FollowedTask, outcome: RunOutcome, state: FinalState | null): void => {
    task.done = true;
    hooks.onFinished({ run: task.run, jobId: task.jobId, logPath: task.logPath(), state, outcome });
  };
  const readTasks = (): void => {
    for (const task of tasks.filter((t) => !t.done)) {
      const { messages, error } = readChannelFile(task.channel);
      if (!task.started && messages.length > 0) {
        task.started = true;
        hooks.onStarted?.(task.run);
      }
      for (const message of messages.slice(task.seen ?? 0)) hooks.onMessage?.(message);
      task.seen = messages.length;
      const outcome = error ? { ok: false as const, reason: error } : outcomeFromMessages(messages);
      if (outcome) {
        const logPath = task.logPath();
        finish(
          task,
          outcome.ok || !logPath ? outcome : { ...outcome, reason: `${outcome.reason} (Slurm job ${task.jobId}; output in ${shownPath(dir, logPath)})` },
          null,
        );
      }
    }
  };

  try {
    while (tasks.some((t) => !t.done)) {
      opts.signal?.throwIfAborted();
      readTasks();
      if (jobEnd !== undefined) {
        // Slurm says the job is over: what the files hold now is all there will be.
        readTasks();
        if (jobEnd instanceof Error) {
          if (opts.signal?.aborted) throw opts.signal.reason;
          for (const task of tasks.filter((t) => !t.done)) {
            finish(task, { ok: false, reason: `could not follow Slurm job ${task.jobId}: ${jobEnd.message}` }, null);
          }
          break;
        }
        const end = jobEnd;
        for (const task of tasks.filter((t) => !t.done)) {
          const own = end.tasks?.find((t) => t.jobId === task.jobId) ?? (end.tasks ? undefined : end);
          const ended = own ?? { jobId: task.jobId, state: 'UNKNOWN' as const, exitCode: null, signal: null };
          finish(task, { ok: false, reason: jobEndReason(ended, task.logPath(), dir, opts.settings) }, ended.state);
        }
        break;
      }
      await Promise.race([sleep(CHANNEL_POLL_MS), waiting]);
    }
  } catch (err) {
    if (opts.signal?.aborted) {
      await cancelJob(jobId, opts).catch(() => undefined);
    }
    throw err;
  } finally {
    stopWaiting.abort();
    await waiting;
  }
}

/**
 * Running the shim's `run` command as Slurm jobs (docs/slurm.md): one job for the cluster
 * variables of a run, or one array job whose tasks are runs (`reprocess --cluster`).
 *
 * A job cannot reach the orchestrator through a pipe, so the shim writes its messages to a
 * channel file (`--channel file:PATH`) under `slurm_logs/.channels/`; the orchestrator reads
 * each file until its final message (run_finished or fatal) arrives, and asks Slurm how a job
 * ended only when that message never comes. This module records nothing: the caller writes
 * the results to the database, staying its only writer.
 *
 * Its parts: slurm-channel-files.ts (the channel files), slurm-follow.ts (following a job's
 * tasks), slurm-job-reports.ts (how a job ended, in words, and where its output is).
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ShimMessage } from '../context/protocol.js';
import { SHIM_SCRIPT } from '../context/shim-process.js';
import type { RunRequest } from '../runs/run-request.js';
import type { RunEnvironment } from './executor.js';
import { runnerArgs } from './local.js';
import { channelDir } from './slurm-channel-files.js';
import { type FollowedTask, type FollowHooks, followTasks, type SlurmRunOptions, type SlurmRunResult } from './slurm-follow.js';
import { arrayTaskLogFile } from './slurm-job-reports.js';
import {
  jobHost,
  processLogFile,
  processArrayLogPattern,
  processLogPattern,
  slurmArrayJobName,
  slurmArrayLogPattern,
  slurmJobName,
  slurmLogFile,
  slurmLogPattern,
  submitJob,
  type FinalState,
} from './slurm.js';

export { readChannelFile } from './slurm-channel-files.js';
export type { SlurmRunOptions, SlurmRunResult } from './slurm-follow.js';
export { arrayTaskLogFile, jobEndReason, shownPath } from './slurm-job-reports.js';
export type { SlurmSettings } from './slurm-settings.js';

function shimArgv(req: RunRequest, env: RunEnvironment, channel: string): string[] {
  return ['--channel', `file:${channel}`, 'run', ...runnerArgs(req, env)];
}

/** Slurm's array index expression for run numbers: consecutive runs as ranges (`1-20,25`). */
export function arrayIndices(runs: readonly number[]): string {
  const sorted = [...new Set(runs)].sort((a, b) => a - b);
  const parts: string[] = [];
  let start = sorted[0];
  let end = start;
  for (const run of [...sorted.slice(1), undefined]) {
    if (run !== undefined && end !== undefined && run === end + 1) {
      end = run;
      continue;
    }
    if (start !== undefined && end !== undefined) parts.push(start === end ? `${start}` : `${start}-${end}`);
    start = run;
    end = run;
  }
  return parts.join(',');
}/** What happens to a run's job, for whoever shows processing state (the GUI's messages, logs). */
export interface SlurmJobEvent {
  phase: 'submitted' | 'started' | 'ended';
  jobId: string;
  proposal: number;
  run: number;
  /** The user who submitted it: this process's. */
  user: string;
  /** The node it runs on, once started; null before, or when Slurm no longer says. */
  host: string | null;
  /** At `ended`: Slurm's final state, or null when the job reported its end itself. */
  state: FinalState | null;
}

export interface RunJobOptions extends SlurmRunOptions {
  onSubmitted?: (jobId: string, logPath: string) => void;
  /** Each of the run's messages, as the job reports them. */
  onMessage?: (message: ShimMessage) => void;
  /** Each phase of the job (submitted, started, ended) with its id, host and user. */
  onJobEvent?: (event: SlurmJobEvent) => void;
}

/** Where a run job's output goes: a Slurm filename pattern, and the file it becomes for a job id. */
interface JobLog {
  pattern: string;
  file: (jobId: string) => string;
}

/** Submits the shim's `run` for `req` as the job `r<R>-p<P>-damnit` and follows it to its end. */
async function runRunJob(req: RunRequest, env: RunEnvironment, opts: RunJobOptions, log: JobLog): Promise<SlurmRunResult> {
  const dir = env.dir;
  mkdirSync(dir.slurmLogsDir, { recursive: true });
  const channels = channelDir(dir);
  const user = os.userInfo().username;
  let host: string | null = null;
  try {
    const channel = path.join(channels, `r${req.run}.jsonl`);
    const { jobId } = await submitJob(
      {
        jobName: slurmJobName(req.run, req.proposal),
        logPath: log.pattern,
        ...opts.settings,
        cpusPerTask: opts.resources?.cpus,
        mem: opts.resources?.mem,
        command: [env.python, SHIM_SCRIPT, ...shimArgv(req, env, channel)],
        cwd: dir.root,
      },
      opts,
    );
    const logPath = log.file(jobId);
    const event = (phase: SlurmJobEvent['phase'], state: FinalState | null = null): void =>
      opts.onJobEvent?.({ phase, jobId, proposal: req.proposal, run: req.run, user, host, state });
    opts.onSubmitted?.(jobId, logPath);
    event('submitted');
    let result: SlurmRunResult | undefined;
    const task = { run: req.run, jobId, channel, logPath: () => logPath, started: false, done: false };
    await followTasks(jobId, [task], dir, opts, {
      onStarted: () => {
        if (!opts.onJobEvent) return;
        void jobHost(jobId, opts).then((node) => {
          host = node;
          event('started');
        });
      },
      onMessage: opts.onMessage,
      onFinished: (r) => (result = r),
    });
    if (!result) throw new Error(`Slurm job ${jobId} was followed to its end without a result`);
    event('ended', result.state);
    return result;
  } finally {
    rmSync(channels, { recursive: true, force: true });
  }
}

/**
 * Submits the job `r<R>-p<P>-damnit` that computes `req`'s cluster variables (`run --cluster
 * only`, written to the run's HDF5 file) and follows it to its end. Throws SlurmError when
 * Slurm refuses the job or is not installed (SlurmUnavailableError).
 */
export function runClusterJob(req: RunRequest, env: RunEnvironment, opts: RunJobOptions): Promise<SlurmRunResult> {
  return runRunJob({ ...req, cluster: 'only' }, env, opts, {
    pattern: slurmLogPattern(env.dir, req.run, req.proposal),
    file: (jobId) => slurmLogFile(env.dir, req.run, req.proposal, jobId),
  });
}

/**
 * process_on slurm: the job `r<R>-p<P>-damnit` that processes `req` as a whole (its non-cluster
 * variables, with `opts.resources`), its output appended to `process_logs/r<R>-p<P>.out` as in
 * the reference backend. Throws SlurmError as runClusterJob does.
 */
export function runProcessJob(req: RunRequest, env: RunEnvironment, opts: RunJobOptions): Promise<SlurmRunResult> {
  mkdirSync(env.dir.processLogsDir, { recursive: true });
  return runRunJob(req, env, opts, {
    pattern: processLogPattern(env.dir, req.run, req.proposal),
    file: () => processLogFile(env.dir, req.run, req.proposal),
  });
}

export interface ArrayHooks extends FollowHooks {
  onSubmitted?: (jobId: string) => void;
}

/**
 * Submits one array job `p<P>-damnit` whose tasks are `reqs` (array index = run number), at
 * most `maxConcurrent` running at once, and follows every task to its end. Resolves with the
 * array's job id once every task is accounted for.
 */
export async function runArrayJob(
  reqs: readonly RunRequest[],
  env: RunEnvironment,
  opts: SlurmRunOptions & {
    maxConcurrent: number;
    /** `process`: each task appends to `process_logs/r<R>-p<P>.out` (process_on slurm); else slurm_logs/. */
    logs?: 'slurm' | 'process';
  },
  hooks: ArrayHooks,
): Promise<string> {
  const first = reqs[0];
  if (!first) throw new Error('an array job needs at least one run');
  if (reqs.some((r) => r.proposal !== first.proposal)) throw new Error('an array job covers runs of one proposal');
  if (new Set(reqs.map((r) => r.run)).size !== reqs.length) throw new Error('an array job runs each run once');
  const dir = env.dir;
  const processLogs = opts.logs === 'process';
  mkdirSync(dir.slurmLogsDir, { recursive: true });
  if (processLogs) mkdirSync(dir.processLogsDir, { recursive: true });
  const channels = channelDir(dir);
  try {
    const tasksFile = path.join(channels, 'tasks.json');
    const channelOf = (run: number): string => path.join(channels, `r${run}.jsonl`);
    const argvByIndex = Object.fromEntries(reqs.map((req) => [String(req.run), shimArgv(req, env, channelOf(req.run))]));
    writeFileSync(tasksFile, JSON.stringify({ tasks: argvByIndex }));
    const { jobId } = await submitJob(
      {
        jobName: slurmArrayJobName(first.proposal),
        logPath: processLogs ? processArrayLogPattern(dir, first.proposal) : slurmArrayLogPattern(dir, first.proposal),
        cpusPerTask: opts.resources?.cpus,
        mem: opts.resources?.mem,
        ...opts.settings,
        array: { indices: arrayIndices(reqs.map((r) => r.run)), maxConcurrent: opts.maxConcurrent },
        // The shim runs the arguments of the run whose index is `$SLURM_ARRAY_TASK_ID`
        // (python-shim/_damnit_shim/array_task.py).
        command: [env.python, SHIM_SCRIPT, 'array-task', tasksFile],
        cwd: dir.root,
      },
      opts,
    );
    hooks.onSubmitted?.(jobId);
    const tasks: FollowedTask[] = reqs.map((req) => ({
      run: req.run,
      jobId: `${jobId}_${req.run}`,
      channel: channelOf(req.run),
      logPath: () => (processLogs ? processLogFile(dir, req.run, req.proposal) : arrayTaskLogFile(dir, req.run, req.proposal, jobId)),
      started: false,
      done: false,
    }));
    await followTasks(jobId, tasks, dir, opts, hooks);
    return jobId;
  } finally {
    rmSync(channels, { recursive: true, force: true });
  }
}

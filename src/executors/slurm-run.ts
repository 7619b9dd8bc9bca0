/**
 * Running the shim's `run` command as Slurm jobs (docs/slurm.md): one job for the cluster
 * variables of a run, or one array job whose tasks are runs (`reprocess --cluster`).
 *
 * A job cannot reach the orchestrator through a pipe, so the shim writes its messages to a
 * channel file (`--channel file:PATH`) under `slurm_logs/.channels/`; the orchestrator reads
 * each file until its final message (run_finished or fatal) arrives, and asks Slurm how a job
 * ended only when that message never comes. This module records nothing: the caller writes
 * the results to the database, staying its only writer.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseShimMessage, ProtocolError, type ShimMessage } from '../context/protocol.js';
import { SHIM_SCRIPT } from '../context/shim-process.js';
import type { DatabaseDir } from '../database-dir.js';
import { outcomeFromMessages, type RunOutcome, type RunRequest } from '../runs/run-request.js';
import type { RunEnvironment } from './executor.js';
import { runnerArgs } from './local.js';
import type { JobResources, SlurmSettings } from './slurm-settings.js';
import {
  cancelJob,
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
  waitForJob,
  type FinalState,
  type JobOutcome,
  type SlurmCommandOptions,
} from './slurm.js';

/** How often channel files are read while jobs run: reading a small file costs next to nothing. */
const CHANNEL_POLL_MS = 250;

export type { SlurmSettings } from './slurm-settings.js';

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

/** What a channel file holds so far: the messages of complete lines, or why it cannot be read. */
export function readChannelFile(file: string): { messages: ShimMessage[]; error: string | null } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { messages: [], error: null };
    throw err;
  }
  const messages: ShimMessage[] = [];
  // A line without its newline is still being written.
  const complete = text.slice(0, text.lastIndexOf('\n') + 1);
  for (const line of complete.split('\n')) {
    if (line.trim() === '') continue;
    try {
      messages.push(parseShimMessage(line));
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      return { messages, error: `Python shim protocol error: ${err.message}` };
    }
  }
  return { messages, error: null };
}

/** A display path: relative to the database directory when it is inside it. */
export function shownPath(dir: DatabaseDir, file: string): string {
  const relative = path.relative(dir.root, file);
  return relative.startsWith('..') || path.isAbsolute(relative) ? file : relative;
}

/** Why a job that never reported its end ended, in words, with where its output is. */
export function jobEndReason(
  job: { jobId: string; state: FinalState; exitCode: number | null; signal: number | null },
  logPath: string | null,
  dir: DatabaseDir,
  settings: SlurmSettings,
): string {
  const id = `Slurm job ${job.jobId}`;
  let what: string;
  switch (job.state) {
    case 'FAILED':
      what = `${id} FAILED` + (job.exitCode !== null ? ` with exit code ${job.exitCode}` : '');
      break;
    case 'TIMEOUT':
      what = `${id} reached its time limit and was stopped (TIMEOUT; slurm_time is ${settings.time ?? 'the default'})`;
      break;
    case 'CANCELLED':
      what = `${id} was CANCELLED`;
      break;
    case 'COMPLETED':
      what = `${id} COMPLETED without reporting the run's results`;
      break;
    case 'UNKNOWN':
      what = `${id} ended, but Slurm no longer knows how`;
      break;
    default:
      what = `${id} ended as ${job.state}`;
  }
  if (job.signal !== null && job.state !== 'CANCELLED') what += ` (signal ${job.signal})`;
  return logPath && existsSync(logPath) ? `${what}; its output is in ${shownPath(dir, logPath)}` : `${what}; it wrote no output`;
}

/** A fresh directory for one submission's channel files, removed once they are read. */
function channelDir(dir: DatabaseDir): string {
  const channels = path.join(dir.slurmLogsDir, '.channels', randomBytes(6).toString('hex'));
  mkdirSync(channels, { recursive: true });
  return channels;
}

function shimArgv(req: RunRequest, env: RunEnvironment, channel: string): string[] {
  return ['--channel', `file:${channel}`, 'run', ...runnerArgs(req, env)];
}

/**
 * The log of an array task: `r<R>-p<P>-<its own job id>.out`. Slurm gives each task its own job
 * id when the task starts, from the array's id upwards, so it is the lowest such id for the run.
 */
export function arrayTaskLogFile(dir: DatabaseDir, run: number, proposal: number, arrayJobId: string): string | null {
  const pattern = new RegExp(`^r${run}-p${proposal}-(\\d+)\\.out$`);
  let best: number | null = null;
  let names: string[];
  try {
    names = readdirSync(dir.slurmLogsDir);
  } catch {
    return null;
  }
  for (const name of names) {
    const id = Number(pattern.exec(name)?.[1] ?? NaN);
    if (id >= Number(arrayJobId) && (best === null || id < best)) best = id;
  }
  return best === null ? null : slurmLogFile(dir, run, proposal, String(best));
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
}

interface FollowedTask {
  run: number;
  /** `<job id>` for a single job, `<array id>_<run>` for an array task. */
  jobId: string;
  channel: string;
  logPath: () => string | null;
  started: boolean;
  done: boolean;
}

interface FollowHooks {
  onStarted?: (run: number) => void;
  onFinished: (result: SlurmRunResult) => void;
}

/**
 * Reads the tasks' channel files until every task has reported its end, or, for those that
 * never do, until Slurm says the job ended. Each task is handed to `onFinished` as soon as its
 * end is known.
 */
async function followTasks(
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

/** What happens to a run's job, for whoever shows processing state (the GUI's messages, logs). */
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

/**
 * Submitting work to Slurm and following it to its end (contract section 6, docs/slurm.md).
 *
 * Every Slurm command is started with an argument vector; no user text (variable names, paths,
 * settings) is ever parsed by a shell. The job's command reaches the compute node through a
 * fixed job script whose only line is `exec "$@"`: sbatch hands the script its arguments
 * verbatim, so the command runs exactly as given.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import type { DatabaseDir } from '../database-dir.js';
import { CONFIG_DEFAULTS } from '../db/config-keys.js';
import { programName } from '../program-name.js';
import { makeTempDir, removeTempDir } from '../temp-dirs.js';
import { SlurmError, SlurmUnavailableError } from './slurm-errors.js';

/** `slurm_time` when the database sets none. */
export const DEFAULT_SLURM_TIME: string = CONFIG_DEFAULTS.slurm_time;

/** The job script: constant, so nothing in it comes from the user. */
const JOB_SCRIPT = `#!/bin/sh
# Written by damnit-ts. The command arrives as this script's arguments and is run as they are,
# without being parsed by any shell.
exec "$@"
`;

/** A job state after which Slurm will not run the job again by itself. */
export const TERMINAL_STATES = [
  'COMPLETED',
  'FAILED',
  'CANCELLED',
  'TIMEOUT',
  'NODE_FAIL',
  'OUT_OF_MEMORY',
  'BOOT_FAIL',
  'DEADLINE',
  'PREEMPTED',
] as const;
export type TerminalState = (typeof TERMINAL_STATES)[number];

/** What a followed job ended as; UNKNOWN when Slurm no longer knows the job at all. */
export type FinalState = TerminalState | 'UNKNOWN';

export { SlurmError, SlurmUnavailableError } from './slurm-errors.js';

export interface ArraySpec {
  /** Slurm's index expression: `0-19`, `3,7,12`, `1-9:2`. */
  indices: string;
  /** At most this many tasks run at once (`%N`). */
  maxConcurrent?: number;
}

export interface JobSpec {
  jobName: string;
  /** Slurm filename pattern for stdout and stderr together (`%j` = job id); see slurmLogPattern. */
  logPath: string;
  /** Ignored when a reservation is given (contract: the reservation wins). */
  partition?: string | null;
  reservation?: string | null;
  /** `slurm_time`; DEFAULT_SLURM_TIME when unset. */
  time?: string | null;
  array?: ArraySpec;
  /** `--cpus-per-task`; Slurm's default when unset. */
  cpusPerTask?: number;
  /** `--mem` (e.g. `25G`); Slurm's default when unset. */
  mem?: string;
  /** Program and arguments, run as given on the compute node. */
  command: string[];
  /** The job's working directory; the submitting process's own when unset. */
  cwd?: string;
}

/** Environment for the Slurm commands, on top of this process's (e.g. SLURM_CONF). */
export interface SlurmCommandOptions {
  env?: Record<string, string | undefined>;
}

/** `r<R>-p<P>-damnit`: the run number first, so squeue's narrow name column still shows it. */
export function slurmJobName(run: number, proposal: number): string {
  return `r${run}-p${proposal}-damnit`;
}

/** The name of an array job that fans one proposal's runs out. */
export function slurmArrayJobName(proposal: number): string {
  return `p${proposal}-damnit`;
}

/**
 * Slurm treats `%` in an output path as a pattern and a backslash anywhere as "no patterns at
 * all" (which would leave `%j` unexpanded), so a directory must be escaped before it is joined
 * with a pattern.
 */
function escapeForSlurmPattern(dir: string): string {
  if (dir.includes('\\')) {
    throw new SlurmError(`cannot write Slurm logs under ${dir}: Slurm does not allow '\\' in log paths`);
  }
  return dir.replaceAll('%', '%%');
}

/** `slurm_logs/r<R>-p<P>-%j.out`: Slurm fills in the job id. */
export function slurmLogPattern(dbDir: DatabaseDir, run: number, proposal: number): string {
  return path.join(escapeForSlurmPattern(dbDir.slurmLogsDir), `r${run}-p${proposal}-%j.out`);
}

/**
 * For an array whose indices are run numbers: each task logs to `r<R>-p<P>-<its job id>.out`,
 * the same name a single job for that run would use.
 */
export function slurmArrayLogPattern(dbDir: DatabaseDir, proposal: number): string {
  return path.join(escapeForSlurmPattern(dbDir.slurmLogsDir), `r%a-p${proposal}-%j.out`);
}

/** The log file of a submitted job (or array task, by its own job id). */
export function slurmLogFile(dbDir: DatabaseDir, run: number, proposal: number, jobId: string): string {
  return path.join(dbDir.slurmLogsDir, `r${run}-p${proposal}-${jobId}.out`);
}

/** `process_logs/r<R>-p<P>.out`: every job that processes the run appends to it (process_on slurm). */
export function processLogFile(dbDir: DatabaseDir, run: number, proposal: number): string {
  return path.join(dbDir.processLogsDir, `r${run}-p${proposal}.out`);
}

/** processLogFile as Slurm's --output pattern. */
export function processLogPattern(dbDir: DatabaseDir, run: number, proposal: number): string {
  return path.join(escapeForSlurmPattern(dbDir.processLogsDir), `r${run}-p${proposal}.out`);
}

/** For an array whose indices are run numbers: each task appends to its run's processLogFile. */
export function processArrayLogPattern(dbDir: DatabaseDir, proposal: number): string {
  return path.join(escapeForSlurmPattern(dbDir.processLogsDir), `r%a-p${proposal}.out`);
}

/** `slurm_logs/worker-p<P>-%j.out`: the output of a warm worker job (slurm-workers.ts). */
export function slurmWorkerLogPattern(dbDir: DatabaseDir, proposal: number): string {
  return path.join(escapeForSlurmPattern(dbDir.slurmLogsDir), `worker-p${proposal}-%j.out`);
}

export function slurmWorkerLogFile(dbDir: DatabaseDir, proposal: number, jobId: string): string {
  return path.join(dbDir.slurmLogsDir, `worker-p${proposal}-${jobId}.out`);
}

function requireSetting(value: string, what: string): string {
  if (value.trim() === '' || /\s/.test(value)) {
    throw new SlurmError(`invalid ${what} '${value}': it must be one word`);
  }
  return value;
}

/**
 * The sbatch arguments for a job, ending with the job script and the command as its arguments.
 * stdout and stderr share one file (sbatch does this when no --error is given), appended to.
 */
export function sbatchArgs(spec: JobSpec, jobScript: string): string[] {
  if (spec.command.length === 0) throw new SlurmError('a Slurm job needs a command');
  if (spec.jobName.trim() === '') throw new SlurmError('a Slurm job needs a name');
  const args = [
    '--parsable',
    '--job-name',
    spec.jobName,
    '--output',
    spec.logPath,
    '--open-mode=append',
    '--time',
    requireSetting(spec.time || DEFAULT_SLURM_TIME, 'slurm_time'),
  ];
  if (spec.reservation) {
    args.push('--reservation', requireSetting(spec.reservation, 'slurm_reservation'));
  } else if (spec.partition) {
    args.push('--partition', requireSetting(spec.partition, 'slurm_partition'));
  }
  if (spec.cpusPerTask !== undefined) {
    if (!(Number.isInteger(spec.cpusPerTask) && spec.cpusPerTask > 0)) {
      throw new SlurmError(`invalid number of CPUs ${spec.cpusPerTask}: it must be a positive whole number`);
    }
    args.push('--cpus-per-task', String(spec.cpusPerTask));
  }
  if (spec.mem !== undefined) args.push('--mem', requireSetting(spec.mem, 'noncluster_mem'));
  if (spec.array) {
    if (!/^\d+([-:,]\d+)*$/.test(spec.array.indices)) {
      throw new SlurmError(`invalid array indices '${spec.array.indices}'`);
    }
    const limit = spec.array.maxConcurrent;
    if (limit !== undefined && !(Number.isInteger(limit) && limit > 0)) {
      throw new SlurmError(`invalid concurrent job limit ${limit}: it must be a positive whole number`);
    }
    args.push('--array', limit === undefined ? spec.array.indices : `${spec.array.indices}%${limit}`);
  }
  if (spec.cwd) args.push('--chdir', spec.cwd);
  args.push('--', jobScript, ...spec.command);
  return args;
}

/**
 * The environment Slurm commands and jobs get. A job submitted from inside an array task would
 * inherit that task's array variables; DISPLAY and LD_PRELOAD from a desktop session only cause
 * noise on compute nodes.
 */
function slurmEnv(opts: SlurmCommandOptions): Record<string, string> {
  const dropped = new Set(['SLURM_ARRAY_JOB_ID', 'SLURM_ARRAY_TASK_ID', 'DISPLAY', 'LD_PRELOAD']);
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries({ ...process.env, ...opts.env })) {
    if (value !== undefined && !dropped.has(name)) env[name] = value;
  }
  return env;
}

interface CommandResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

async function runSlurmCommand(command: string, args: string[], opts: SlurmCommandOptions): Promise<CommandResult> {
  const result = await execa(command, args, {
    env: slurmEnv(opts),
    extendEnv: false,
    reject: false,
    stdin: 'ignore',
    timeout: 60_000,
  });
  // No exit code: it never started (not installed) or was stopped by the time limit.
  if (result.failed && result.exitCode === undefined) {
    const code = (result.cause as NodeJS.ErrnoException | undefined)?.code;
    if (code === 'ENOENT') throw new SlurmUnavailableError(command);
    throw new SlurmError(`could not run ${command}: ${result.shortMessage}`);
  }
  return { exitCode: result.exitCode ?? -1, stdout: result.stdout, stderr: result.stderr };
}

/** The `error:` lines of a Slurm command's stderr (all of its output if it has none), joined. */
function slurmErrorText(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  const errors = lines.filter((l) => /error:/i.test(l));
  return (errors.length > 0 ? errors : lines).map((l) => l.replace(/^\w+: error: /, '')).join('; ');
}

/** Turns sbatch's refusal into a message that says which setting is wrong and how to fix it. */
function submissionError(spec: JobSpec, result: CommandResult): SlurmError {
  const detail = slurmErrorText(result.stderr) || `sbatch exited with status ${result.exitCode}`;
  if (spec.reservation && /reservation/i.test(detail)) {
    return new SlurmError(
      `Slurm refused the job: the reservation '${spec.reservation}' is invalid or has expired ` +
        `(${detail}). Delete the setting with '${programName()} db-config slurm_reservation --delete', ` +
        `or set a current reservation`,
    );
  }
  if (!spec.reservation && spec.partition && /partition/i.test(detail)) {
    return new SlurmError(
      `Slurm refused the job: the partition '${spec.partition}' is invalid (${detail}). ` +
        `Choose another with '${programName()} db-config slurm_partition NAME', or delete the setting ` +
        `with '${programName()} db-config slurm_partition --delete'`,
    );
  }
  if (/time/i.test(detail) && /invalid|limit/i.test(detail)) {
    return new SlurmError(
      `Slurm refused the job: the time limit '${spec.time || DEFAULT_SLURM_TIME}' was not accepted ` +
        `(${detail}). Set another with '${programName()} db-config slurm_time HH:MM:SS'`,
    );
  }
  if ((spec.mem !== undefined || spec.cpusPerTask !== undefined) && /memory|node configuration|cpu/i.test(detail)) {
    return new SlurmError(
      `Slurm refused the job: no node offers ${spec.cpusPerTask ?? 'the default number of'} CPUs and ` +
        `${spec.mem ?? 'the default memory'} (${detail}). Ask for less with '${programName()} db-config noncluster_mem 8G' ` +
        `or '${programName()} db-config --num noncluster_cpus 2'`,
    );
  }
  return new SlurmError(`Slurm refused the job '${spec.jobName}': ${detail}`);
}

export interface SubmittedJob {
  /** For an array: the array's job id; its tasks are `<jobId>_<index>`. */
  jobId: string;
}

/** Submits a job (or array); resolves once Slurm has accepted it. */
export async function submitJob(spec: JobSpec, opts: SlurmCommandOptions = {}): Promise<SubmittedJob> {
  // sbatch copies the script into the job when it submits, so the file is only needed until then.
  const scriptDir = makeTempDir('damnit-sbatch-');
  try {
    const script = path.join(scriptDir, 'damnit-job.sh');
    await writeFile(script, JOB_SCRIPT, { mode: 0o700 });
    const result = await runSlurmCommand('sbatch', sbatchArgs(spec, script), opts);
    if (result.exitCode !== 0) throw submissionError(spec, result);
    // --parsable prints `<jobid>` or `<jobid>;<cluster>`.
    const jobId = result.stdout.trim().split(';')[0] ?? '';
    if (!/^\d+$/.test(jobId)) {
      throw new SlurmError(`sbatch accepted the job but printed no job id: '${result.stdout.trim()}'`);
    }
    return { jobId };
  } finally {
    removeTempDir(scriptDir);
  }
}

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

export interface JobRecord {
  /** `<id>` for a job, `<array id>_<index>` for an array task. */
  jobId: string;
  state: string;
  /** The job's exit status; null when Slurm has none (yet). */
  exitCode: number | null;
  /** The signal that ended it, if one did. */
  signal: number | null;
  /** Slurm's reason, e.g. NonZeroExitCode, TimeLimit; null when it gave none. */
  reason: string | null;
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

function requireJobId(jobId: string): string {
  if (!/^\d+(_\d+)?$/.test(jobId)) throw new SlurmError(`invalid Slurm job id '${jobId}'`);
  return jobId;
}

export function isTerminalState(state: string): state is TerminalState {
  return (TERMINAL_STATES as readonly string[]).includes(state);
}

/** `1:0` (exit code 1, no signal), `0:15` (killed by signal 15). */
function parseExitCode(text: string | undefined): { exitCode: number | null; signal: number | null } {
  const match = /^(\d+):(\d+)$/.exec(text ?? '');
  if (!match) return { exitCode: null, signal: null };
  const signal = Number(match[2]);
  return { exitCode: Number(match[1]), signal: signal === 0 ? null : signal };
}

/** sacct writes `CANCELLED by 0`; squeue and scontrol write the bare state. */
function normaliseState(state: string): string {
  return state.trim().split(/\s+/)[0]?.replace(/\+$/, '') ?? '';
}

/** Parses `squeue --noheader --array --format=%i|%T|%r` output. */
export function parseSqueue(stdout: string): JobRecord[] {
  const records: JobRecord[] = [];
  for (const line of stdout.split('\n')) {
    const [jobId, state, reason] = line.trim().split('|');
    if (!jobId || !state) continue;
    records.push({
      jobId,
      state: normaliseState(state),
      exitCode: null,
      signal: null,
      reason: reason && reason !== 'None' ? reason : null,
    });
  }
  return records;
}

/** Parses `sacct --noheader --parsable2 --allocations --format=JobID,State,ExitCode` output. */
export function parseSacct(stdout: string): JobRecord[] {
  const records: JobRecord[] = [];
  for (const line of stdout.split('\n')) {
    const [jobId, state, exit] = line.trim().split('|');
    if (!jobId || !state) continue;
    records.push({ jobId, state: normaliseState(state), ...parseExitCode(exit), reason: null });
  }
  return records;
}

/**
 * Parses `scontrol --oneliner show job` output: one record per job or array task. A record's
 * Command field may hold any text, even line breaks, so records start only at a line that begins
 * with `JobId=<digits> `, and the fields read here (which scontrol prints before Command) are
 * taken at their first occurrence.
 */
export function parseScontrolJobs(stdout: string): JobRecord[] {
  const records: JobRecord[] = [];
  for (const text of stdout.split(/\n(?=JobId=\d+ )/)) {
    const field = (name: string): string | undefined =>
      new RegExp(`(?:^| )${name}=(\\S*)`).exec(text)?.[1];
    const id = field('JobId');
    const state = field('JobState');
    if (!id || !state) continue;
    const arrayJobId = field('ArrayJobId');
    const arrayTaskId = field('ArrayTaskId');
    const jobId = arrayJobId && arrayTaskId && /^\d+$/.test(arrayTaskId) ? `${arrayJobId}_${arrayTaskId}` : id;
    const reason = field('Reason');
    records.push({
      jobId,
      state: normaliseState(state),
      ...parseExitCode(field('ExitCode')),
      reason: reason && reason !== 'None' ? reason : null,
    });
  }
  return records;
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

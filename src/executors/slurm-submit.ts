/**
 * Submitting a job (or array) with sbatch (slurm.ts): its arguments, the fixed job script, and
 * sbatch's refusals turned into messages that name the setting to fix.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CONFIG_DEFAULTS } from '../db/config-keys.js';
import { programName } from '../program-name.js';
import { makeTempDir, removeTempDir } from '../temp-dirs.js';
import { type CommandResult, runSlurmCommand, type SlurmCommandOptions, slurmErrorText } from './slurm-commands.js';
import { SlurmError } from './slurm-errors.js';

/** `slurm_time` when the database sets none. */
export const DEFAULT_SLURM_TIME: string = CONFIG_DEFAULTS.slurm_time;

/** The job script: constant, so nothing in it comes from the user. */
const JOB_SCRIPT = `#!/bin/sh
# Written by damnit-ts. The command arrives as this script's arguments and is run as they are,
# without being parsed by any shell.
exec "$@"
`;

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

/**
 * The names of Damnit's Slurm jobs and the paths of their logs, as files and as the `--output`
 * patterns Slurm fills in (slurm.ts).
 */
import path from 'node:path';
import type { DatabaseDir } from '../database-dir.js';
import { SlurmError } from './slurm-errors.js';

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

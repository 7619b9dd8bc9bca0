/**
 * What the user is told about a Slurm job (slurm-run.ts, slurm-workers.ts): why a job that never
 * reported its end ended, and where its output is (an array task's log included).
 */
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import type { DatabaseDir } from '../database-dir.js';
import type { SlurmSettings } from './slurm-settings.js';
import { type FinalState, slurmLogFile } from './slurm.js';

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

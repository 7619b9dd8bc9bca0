/**
 * Submitting one warm worker job (slurm-workers.ts): `worker-p<P>-damnit`, running the shim's
 * `remote-worker`, which connects back to `connect` and introduces itself with `token`. The
 * token goes through a file of mode 0600 under slurm_logs/.channels/, since a job's command line
 * is visible to every user of the cluster.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { SHIM_SCRIPT } from '../context/shim-process.js';
import { stringSetting, type SettingsSource } from '../db/config-keys.js';
import type { RunEnvironment } from './executor.js';
import { slurmWorkerLogPattern, submitJob, type SlurmCommandOptions } from './slurm.js';
import { jobResources, slurmSettings } from './slurm-settings.js';

export interface SubmittedWorker {
  jobId: string;
  /** Holds the token file; remove it once the job has ended. */
  tokenDir: string;
}

export async function submitWorkerJob(
  env: RunEnvironment,
  settings: SettingsSource,
  job: { proposal: number; connect: string; token: string },
  opts: SlurmCommandOptions,
): Promise<SubmittedWorker> {
  const tokenDir = path.join(env.dir.slurmLogsDir, '.channels', `worker-${randomBytes(6).toString('hex')}`);
  try {
    const slurm = slurmSettings(settings);
    const resources = jobResources(settings);
    mkdirSync(tokenDir, { recursive: true, mode: 0o700 });
    const tokenFile = path.join(tokenDir, 'token');
    writeFileSync(tokenFile, job.token, { mode: 0o600 });
    const { jobId } = await submitJob(
      {
        jobName: `worker-p${job.proposal}-damnit`,
        logPath: slurmWorkerLogPattern(env.dir, job.proposal),
        ...slurm,
        // Worker jobs live on across runs: slurm_worker_time, if set, is their own limit.
        time: stringSetting(settings, 'slurm_worker_time')?.trim() || slurm.time,
        cpusPerTask: resources.cpus,
        mem: resources.mem,
        command: [env.python, SHIM_SCRIPT, 'remote-worker', '--connect', job.connect, '--token-file', tokenFile],
        cwd: env.dir.root,
      },
      opts,
    );
    return { jobId, tokenDir };
  } catch (err) {
    rmSync(tokenDir, { recursive: true, force: true });
    throw err;
  }
}

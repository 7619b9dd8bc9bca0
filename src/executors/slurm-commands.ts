/**
 * Running one Slurm command (sbatch, scancel, squeue, sacct, scontrol) with an argument vector,
 * never through a shell, and reading its errors (slurm.ts).
 */
import { execa } from 'execa';
import { SlurmError, SlurmUnavailableError } from './slurm-errors.js';

/** Environment for the Slurm commands, on top of this process's (e.g. SLURM_CONF). */
export interface SlurmCommandOptions {
  env?: Record<string, string | undefined>;
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

export interface CommandResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export async function runSlurmCommand(command: string, args: string[], opts: SlurmCommandOptions): Promise<CommandResult> {
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
export function slurmErrorText(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  const errors = lines.filter((l) => /error:/i.test(l));
  return (errors.length > 0 ? errors : lines).map((l) => l.replace(/^\w+: error: /, '')).join('; ');
}

/** The job id, checked: `<id>` or `<array id>_<index>`. */
export function requireJobId(jobId: string): string {
  if (!/^\d+(_\d+)?$/.test(jobId)) throw new SlurmError(`invalid Slurm job id '${jobId}'`);
  return jobId;
}

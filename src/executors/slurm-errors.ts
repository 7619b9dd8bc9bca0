/**
 * Slurm's errors, in a module of their own that loads nothing: commands that only check
 * settings (db-config, reprocess before it submits) name them without loading execa.
 */
export class SlurmError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SlurmError';
  }
}

/** Slurm's commands are not installed here: cluster variables cannot be submitted. */
export class SlurmUnavailableError extends SlurmError {
  constructor(command: string) {
    super(
      `Slurm is not available on this machine ('${command}' was not found on PATH): ` +
        `cluster variables need a machine with Slurm's client commands (sbatch, squeue, scontrol)`,
    );
    this.name = 'SlurmUnavailableError';
  }
}

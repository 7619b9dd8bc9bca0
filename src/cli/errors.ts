/** A failure that ends a command: printed as `Error: <message>` with the given exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = 1,
    /** Extra detail printed only with --debug (a traceback, say). */
    readonly debugDetail?: string,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** A mistake in the command line itself; exits 2 like argparse, which the reference CLI uses. */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, 2);
    this.name = 'UsageError';
  }
}

#!/usr/bin/env node
import path from 'node:path';
import { Command, CommanderError } from 'commander';
import { CliError } from './errors.js';
import { commands } from './commands/index.js';

/** Installed as both `amore-proto` (the seed's name) and `damnit` (the reference's later name). */
function programName(): string {
  const invoked = path.basename(process.argv[1] ?? '');
  return invoked === 'damnit' ? 'damnit' : 'amore-proto';
}

export function buildProgram(): Command {
  const program = new Command(programName())
    .description('DAMNIT backend: compute context.py variables for each run of a proposal')
    .option('--debug', 'show debug output and full tracebacks')
    .showHelpAfterError(false)
    .exitOverride();
  for (const register of commands) register(program);
  // Subcommands inherit exitOverride only when it is set before they are added; set it again.
  for (const sub of program.commands) sub.exitOverride();
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version exit 0; every other commander error is a usage error (argparse: 2).
      return err.exitCode === 0 ? 0 : 2;
    }
    const debug = Boolean(program.opts().debug);
    if (err instanceof CliError) {
      process.stderr.write(`Error: ${err.message}\n`);
      if (debug && err.debugDetail) process.stderr.write(`${err.debugDetail}\n`);
      return err.exitCode;
    }
    const e = err as Error;
    process.stderr.write(`Error: ${e?.message ?? String(err)}\n`);
    if (debug && e?.stack) process.stderr.write(`${e.stack}\n`);
    return 1;
  }
}

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`Error: ${String(err)}\n`);
    process.exitCode = 1;
  },
);

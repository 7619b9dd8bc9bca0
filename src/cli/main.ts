#!/usr/bin/env node
import { styleText } from 'node:util';
import { Command, CommanderError } from 'commander';
import { CURRENT_NAME, DEPRECATED_NAME, invokedByDeprecatedName, programName } from '../program-name.js';
import { ArgparseError, argparseStyle, checkCommandChoices } from './argparse-style.js';
import { CliError } from './errors.js';
import { commands } from './commands/index.js';

export function buildProgram(): { program: Command; usageError: (err: CommanderError) => ArgparseError } {
  const program = new Command(programName())
    .description('DAMNIT backend: compute context.py variables for each run of a proposal')
    .option('--debug', 'show debug output and full tracebacks');
  for (const register of commands) register(program);
  return { program, usageError: argparseStyle(program) };
}

/** The reference's note for its old name; on stderr, so that what scripts read is unchanged. */
function deprecationNote(): void {
  const note = `Warning: '${DEPRECATED_NAME}' has been renamed to '${CURRENT_NAME}'. Please update your scripts.`;
  const color = Boolean(process.stderr.isTTY) && process.env.NO_COLOR === undefined;
  process.stderr.write(`${color ? styleText('yellow', note) : note}\n`);
}

/**
 * A reader that went away (`damnit db-config -h | head`) ends the command quietly, as it
 * ends `cat`: exit 0 when standard output is closed, and nothing more said on a closed stderr.
 */
function endQuietlyOnClosedPipes(): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  process.stderr.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
  });
}

export async function main(argv: string[]): Promise<number> {
  endQuietlyOnClosedPipes();
  if (invokedByDeprecatedName()) deprecationNote();
  const { program, usageError } = buildProgram();
  try {
    checkCommandChoices(program, argv.slice(2));
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help exits 0; every other commander error is a usage error (argparse: 2).
      if (err.exitCode === 0) return 0;
      err = usageError(err);
    }
    if (err instanceof ArgparseError) {
      process.stderr.write(err.render());
      return err.exitCode;
    }
    const debug = Boolean(program.opts().debug);
    // A locked or damaged runs.sqlite, wherever it surfaced, is one line naming the file
    // (loaded here, not at start: it brings SQLite, which most help and usage never need).
    const { explainDatabaseError } = await import('../db/errors.js');
    err = explainDatabaseError(err);
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

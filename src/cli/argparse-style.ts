/**
 * The command line speaks as the reference's (Python argparse) does, so that scripts and
 * habits carry over: help titled `usage:`, usage errors as `usage: ...` then
 * `<prog>: error: <message>` with exit status 2, and an unknown command is an `invalid choice`
 * even when `--help` follows it.
 */
import type { Command, CommanderError } from 'commander';
import { UsageError } from './errors.js';

/** argparse's section titles for commander's. */
const TITLES: Record<string, string> = {
  'Usage:': 'usage:',
  'Arguments:': 'positional arguments:',
  'Options:': 'options:',
  'Commands:': 'commands:',
  'Global Options:': 'global options:',
};

/** A usage error, printed as argparse prints it: the command's usage line, then the message. */
export class ArgparseError extends UsageError {
  constructor(
    readonly command: Command,
    message: string,
  ) {
    super(message);
    this.name = 'ArgparseError';
  }

  /** The full text for stderr; argparse names a subcommand's errors `<prog> <command>`. */
  render(): string {
    return `usage: ${usageOf(this.command)}\n${pathOf(this.command)}: error: ${this.message}\n`;
  }
}

function pathOf(command: Command): string {
  return command.parent ? `${pathOf(command.parent)} ${command.name()}` : command.name();
}

function usageOf(command: Command): string {
  return command.createHelp().commandUsage(command);
}

/**
 * Applies argparse's help and error style to `program` and every command under it. Commander
 * prints nothing of its own errors; the returned function turns the one it threw into
 * argparse's, with the usage of the command that raised it.
 */
export function argparseStyle(program: Command): (err: CommanderError) => ArgparseError {
  let failing = program;
  const visit = (command: Command): void => {
    command.configureHelp({ styleTitle: (title) => TITLES[title] ?? title.toLowerCase() });
    command.helpOption('-h, --help', 'show this help message and exit');
    command.configureOutput({
      outputError: () => {
        failing = command;
      },
    });
    command.exitOverride();
    command.commands.forEach(visit);
  };
  visit(program);
  program.helpCommand(false);
  return (err) => fromCommander(err, failing);
}

/** The names a command answers to. */
function namesOf(command: Command): string[] {
  return [command.name(), ...command.aliases()];
}

/**
 * Checks that each command group in `args` is followed by one of its commands before commander
 * parses them: commander would print help for `foo --help`, argparse says `invalid choice`.
 */
export function checkCommandChoices(program: Command, args: readonly string[]): void {
  let command = program;
  for (const arg of args) {
    if (command.commands.length === 0 || arg === '--') return;
    if (arg === '-h' || arg === '--help') return;
    if (arg.startsWith('-')) continue;
    const sub = command.commands.find((c) => namesOf(c).includes(arg));
    if (sub === undefined) throw invalidChoice(command, arg);
    command = sub;
  }
  if (command.commands.length > 0) {
    throw new ArgparseError(command, 'the following arguments are required: command');
  }
}

function invalidChoice(command: Command, choice: string): ArgparseError {
  const choices = command.commands.map((c) => `'${c.name()}'`).join(', ');
  return new ArgparseError(command, `argument command: invalid choice: '${choice}' (choose from ${choices})`);
}

/** argparse's message for a usage error commander raised while parsing `command`'s arguments. */
function fromCommander(err: CommanderError, command: Command): ArgparseError {
  const quoted = /'([^']*)'/.exec(err.message)?.[1] ?? '';
  switch (err.code) {
    case 'commander.unknownOption':
      return new ArgparseError(command, `unrecognized arguments: ${quoted}`);
    case 'commander.excessArguments': {
      const extra = command.args.slice(command.registeredArguments.length);
      return new ArgparseError(command, `unrecognized arguments: ${extra.join(' ')}`);
    }
    case 'commander.missingArgument':
      return new ArgparseError(command, `the following arguments are required: ${quoted}`);
    case 'commander.optionMissingArgument':
      return new ArgparseError(command, `argument ${quoted.split(' ')[0]}: expected one argument`);
    case 'commander.unknownCommand':
      return invalidChoice(command, quoted);
    case 'commander.invalidArgument': {
      const choice = /^error: option '(\S+)[^']*' argument '([^']*)' is invalid\. Allowed choices are (.*)\.$/.exec(err.message);
      if (choice === null) break;
      const [, option, value, allowed] = choice as unknown as [string, string, string, string];
      const choices = allowed.split(', ').map((c) => `'${c}'`).join(', ');
      return new ArgparseError(command, `argument ${option}: invalid choice: '${value}' (choose from ${choices})`);
    }
  }
  return new ArgparseError(command, err.message.replace(/^error: /, ''));
}

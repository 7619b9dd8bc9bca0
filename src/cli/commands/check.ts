import { type Command, Option } from 'commander';
import { countBySeverity, type FileReport } from '../../validate/diagnostics.js';
import {
  formatGithub,
  formatJson,
  formatText,
  type OutputFormat,
  OUTPUT_FORMATS,
  summaryLine,
  wantColor,
} from '../../validate/report.js';
import { DEFAULT_TARGET, parsePythonVersion, TargetResolver } from '../../validate/target-python.js';
import type { ContextValidator, PyflakesStatus } from '../../validate/validator.js';
import { CliError } from '../errors.js';
import { withStatus } from '../progress.js';

/** Shown on a terminal while Pyodide loads, which takes a few seconds. */
export const STARTING_CHECKER = 'Starting the Python checker (Pyodide, no Python needed)...';

interface CheckOptions {
  format: OutputFormat;
  json?: boolean;
  strict?: boolean;
  watch?: boolean;
  pythonVersion?: string;
}

/** Writes the reports in `format`; true when they fail the check. */
function showReports(reports: FileReport[], format: OutputFormat, pyflakes: PyflakesStatus, strict: boolean): boolean {
  if (format === 'json') {
    process.stdout.write(formatJson(reports, pyflakes));
  } else if (format === 'github') {
    process.stdout.write(formatGithub(reports));
  } else {
    const tty = Boolean(process.stdout.isTTY);
    process.stdout.write(formatText(reports, { showSource: tty, color: wantColor(process.stdout) }));
    process.stderr.write(`${summaryLine(reports)}\n`);
  }
  const { errors, warnings } = countBySeverity(reports);
  return errors > 0 || (strict && warnings > 0);
}

/** The one line saying pyflakes did not run, and how to get it. */
export function pyflakesSkippedLine(status: PyflakesStatus): string | null {
  if (status.available) return null;
  return `note: pyflakes warnings were skipped (${status.reason}; run scripts/fetch-pyflakes.sh to add it)`;
}

export function register(program: Command): void {
  program
    .command('check')
    .description(
      'Check context files without running them and without Python (in Pyodide): errors that would ' +
        'stop the context from loading, and pyflakes warnings',
    )
    .argument('<files...>', 'context files to check')
    .addOption(new Option('--format <format>', 'output format').choices(OUTPUT_FORMATS).default('text'))
    .option('--json', 'same as --format json')
    .option('--strict', 'warnings make the check fail too')
    .option('--watch', 'after the first check, check each file again whenever it is saved, in the same warm checker, until Ctrl-C')
    .option(
      '--python-version <X.Y>',
      `Python version whose grammar to check against (default: the database's context_python ` +
        `when it runs here, else ${DEFAULT_TARGET.major}.${DEFAULT_TARGET.minor})`,
    )
    .addHelpText(
      'after',
      '\nExit status: 0 no errors, 1 errors (or warnings with --strict), 2 a mistake in the command line.',
    )
    .action(async (files: string[], opts: CheckOptions) => {
      const format: OutputFormat = opts.json ? 'json' : opts.format;
      const explicit = opts.pythonVersion === undefined ? undefined : parsePythonVersion(opts.pythonVersion);
      // Pyodide's loader and the checker come in only now: help and usage need neither.
      const { checkFiles, requireFiles } = await import('../../validate/check-files.js');
      const { ContextValidator } = await import('../../validate/validator.js');
      requireFiles(files);
      const targets = new TargetResolver({ explicit });
      let validator: ContextValidator;
      try {
        validator = await withStatus(STARTING_CHECKER, () => ContextValidator.start());
      } catch (err) {
        throw new CliError((err as Error).message);
      }
      const strict = Boolean(opts.strict);
      try {
        const reports = await checkFiles(files, validator, targets);
        for (const note of targets.notes) process.stderr.write(`note: ${note}\n`);
        const skipped = pyflakesSkippedLine(validator.pyflakes);
        if (skipped !== null) process.stderr.write(`${skipped}\n`);
        const failed = showReports(reports, format, validator.pyflakes, strict);
        if (!opts.watch) {
          if (failed) process.exitCode = 1;
          return;
        }
        const { watchFiles } = await import('../check-watch.js');
        const signal = await watchFiles(files, validator, targets, (again, changed) => {
          process.stderr.write(`--- ${new Date().toLocaleTimeString()}: ${changed.join(', ')} changed ---\n`);
          showReports(again, format, validator.pyflakes, strict);
        });
        process.exitCode = signal === 'SIGINT' ? 130 : 0;
      } finally {
        validator.close();
      }
    });
}

import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { CONTEXT_FILE, requireDatabaseDir } from '../../database-dir.js';
import { countBySeverity, type Diagnostic } from '../../validate/diagnostics.js';
import type { LoadProblem } from '../../context/protocol.js';
import { formatText, wantColor } from '../../validate/report.js';
import type { ContextValidator } from '../../validate/validator.js';
import { plural } from '../../text.js';
import { CliError } from '../errors.js';
import { withStatus } from '../progress.js';
import { pyflakesSkippedLine, STARTING_CHECKER } from './check.js';
import { viewOverflowWarning } from './read-context.js';

/** What the real loader found, shown like what the check finds. */
function loadProblemAsDiagnostic(problem: LoadProblem, severity: Diagnostic['severity']): Diagnostic {
  return {
    severity,
    kind: problem.kind,
    message: problem.message,
    line: problem.line,
    column: problem.line === null ? null : problem.column,
    variable: problem.variable ?? null,
    code: null,
  };
}

export function register(program: Command): void {
  const context = program.command('context').description('Manage the context file of this database');
  context
    .command('install')
    .description(
      'Check NEW_FILE and, if it has no errors and loads with the context_python, make it the live ' +
        `${CONTEXT_FILE} (atomically; the previous version is kept in context_history/) and update ` +
        'the variables as read-context does. Warnings do not block.',
    )
    .argument('<new_file>', 'the new context file')
    .action(async (newFile: string, _options: unknown, command: Command) => {
      const debug = Boolean(command.optsWithGlobals().debug);
      const { openDatabase } = await import('../../db/database.js');
      const { requireFiles } = await import('../../validate/check-files.js');
      const { installContext } = await import('../../validate/install-context.js');
      const { ContextValidator } = await import('../../validate/validator.js');
      const dir = requireDatabaseDir();
      requireFiles([newFile]);
      const source = readFileSync(newFile);
      const db = openDatabase(dir);
      let validator: ContextValidator | undefined;
      try {
        try {
          validator = await withStatus(STARTING_CHECKER, () => ContextValidator.start());
        } catch (err) {
          throw new CliError((err as Error).message);
        }
        const outcome = await installContext(dir, db, newFile, source, validator, {
          onOutput: (line) => process.stderr.write(`${line}\n`),
        });
        const skipped = pyflakesSkippedLine(validator.pyflakes);
        if (skipped !== null) process.stderr.write(`${skipped}\n`);
        const textOptions = { showSource: Boolean(process.stderr.isTTY), color: wantColor(process.stderr) };
        process.stderr.write(formatText([outcome.report], textOptions));
        const unchanged = `${CONTEXT_FILE} was not changed`;
        if (!outcome.installed && outcome.stage === 'check') {
          const { errors } = countBySeverity([outcome.report]);
          throw new CliError(`${newFile} has ${plural(errors, 'error')}; ${unchanged}`);
        }
        if (!outcome.installed) {
          const loadReport = { ...outcome.report, diagnostics: outcome.problems.map((p) => loadProblemAsDiagnostic(p, 'error')) };
          process.stderr.write(formatText([loadReport], textOptions));
          if (debug && outcome.traceback) process.stderr.write(outcome.traceback.replace(/\n?$/, '\n'));
          throw new CliError(`${newFile} does not load with the context_python; ${unchanged}`);
        }
        if (outcome.warnings.length > 0) {
          const diagnostics = outcome.warnings.map((p) => loadProblemAsDiagnostic(p, 'warning'));
          process.stderr.write(formatText([{ ...outcome.report, diagnostics }], textOptions));
        }
        const overflow = viewOverflowWarning(db);
        if (overflow !== null) process.stderr.write(`warning: ${overflow}\n`);
        const variables = outcome.context.variables;
        const kept = outcome.backup === null ? '' : `; the previous version is ${path.relative(dir.root, outcome.backup)}`;
        console.log(`Installed ${newFile} as ${CONTEXT_FILE}${kept}`);
        console.log(
          `Read ${plural(variables.length, 'variable')} from ${CONTEXT_FILE} with ${outcome.python} ` +
            `(Python ${outcome.pythonVersion})`,
        );
      } finally {
        validator?.close();
        db.close();
      }
    });
}

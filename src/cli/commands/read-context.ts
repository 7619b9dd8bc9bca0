import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { CliError } from '../errors.js';
import { requireDatabaseDir, CONTEXT_FILE } from '../../database-dir.js';
import type { DamnitDb } from '../../db/database.js';
import { SQLITE_MAX_COLUMNS, VIEW_MAX_VARIABLES } from '../../db/schema.js';
import { numberSetting } from '../../db/config-keys.js';
import type { LoadProblem, VariableInfo } from '../../context/protocol.js';
import { nameList, plural } from '../../text.js';

/**
 * `context.py:LINE:COL: message`, with as much of the location as is known; a problem of the
 * whole file (a timeout, say) is its message alone.
 */
export function formatProblem(problem: LoadProblem, cwd: string = process.cwd()): string {
  if (problem.line === null) return problem.message;
  const file = problem.file ? path.relative(cwd, problem.file) || problem.file : CONTEXT_FILE;
  const column = problem.column === null ? '' : `:${problem.column}`;
  return `${file}:${problem.line}${column}: ${problem.message}`;
}

/**
 * Problems that fail or skip only their own variable at run time (an unknown annotation, a
 * `param#` with no default): the context still loads, as in the reference, so they are warnings.
 */
export function warnStaticProblems(problems: LoadProblem[]): void {
  for (const problem of problems) process.stderr.write(`warning: ${formatProblem(problem)}\n`);
}

/**
 * The warning for a context with more variables than SQLite lets the `runs` view show, or null.
 * Their values are still recorded (run_variables, the HDF5 files); only the view leaves them out.
 */
export function viewOverflowWarning(db: DamnitDb): string | null {
  const leftOut = db.namesLeftOutOfViews();
  if (leftOut.length === 0) return null;
  return (
    `the runs view shows only the first ${VIEW_MAX_VARIABLES} variables (SQLite allows ` +
    `${SQLITE_MAX_COLUMNS} columns); ${plural(leftOut.length, 'variable')} are left out of it but ` +
    `still recorded in run_variables and the HDF5 files: ${nameList(leftOut)}`
  );
}

/** variable_set for each variable, as the reference's read-context sends them; waits briefly for the broker. */
async function tellGui(db: DamnitDb, variables: VariableInfo[]): Promise<void> {
  const { COMMAND_FLUSH_MS, COMMAND_NOTICES, openGuiUpdates } = await import('../../updates/gui-updates.js');
  const updates = openGuiUpdates(db, COMMAND_NOTICES);
  updates.variablesSet(variables);
  await updates.close(COMMAND_FLUSH_MS);
}

export function register(program: Command): void {
  program
    .command('read-context')
    .description(
      'Load context.py with the configured context_python and update the variables in the database; ' +
        'on any load problem nothing is changed',
    )
    .action(async (_options: unknown, command: Command) => {
      const debug = Boolean(command.optsWithGlobals().debug);
      const dir = requireDatabaseDir();
      if (!existsSync(dir.contextFile)) {
        throw new CliError(`no ${CONTEXT_FILE} in ${dir.root}: write one there, then run read-context again`);
      }
      const { openDatabase } = await import('../../db/database.js');
      const { describeContext } = await import('../../context/describe.js');
      const { requireContextPython } = await import('../../context/interpreter.js');
      const db = openDatabase(dir);
      try {
        const python = await requireContextPython(db.metameta.get('context_python'));
        const timeoutS = numberSetting(db.metameta, 'context_load_timeout');
        const result = await describeContext(dir, python.python, {
          timeoutMs: timeoutS * 1000,
          // What the context prints while it is imported is the user's: show it, apart from our output.
          onOutput: (_stream, line) => process.stderr.write(`${line}\n`),
        });
        const fail = (problems: LoadProblem[], traceback: string | null): never => {
          for (const problem of problems) process.stderr.write(`${formatProblem(problem)}\n`);
          if (debug && traceback) process.stderr.write(traceback.replace(/\n?$/, '\n'));
          const what = problems.length === 1 ? 'a problem' : `${problems.length} problems`;
          throw new CliError(`${CONTEXT_FILE} has ${what}; the database was not changed`);
        };
        if (!result.ok) return fail(result.problems, result.traceback);
        warnStaticProblems(result.context.static_problems);
        const variables = result.context.variables;
        db.upsertVariables(variables);
        await tellGui(db, variables);
        const overflow = viewOverflowWarning(db);
        if (overflow !== null) process.stderr.write(`warning: ${overflow}\n`);
        const transient = variables.filter((v) => v.transient).length;
        const note = transient > 0 ? ` (${transient} transient, not stored)` : '';
        console.log(
          `Read ${plural(variables.length, 'variable')} from ${CONTEXT_FILE}${note} ` +
            `with ${python.python} (Python ${python.info.version})`,
        );
      } finally {
        db.close();
      }
    });
}

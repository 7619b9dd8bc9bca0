import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { CliError } from '../errors.js';
import { requireDatabaseDir, CONTEXT_FILE } from '../../database-dir.js';
import { openDatabase } from '../../db/database.js';
import { numberSetting } from '../../db/config-keys.js';
import { describeContext } from '../../context/describe.js';
import { requireContextPython } from '../../context/interpreter.js';
import type { LoadProblem } from '../../context/protocol.js';
import { plural } from '../../text.js';

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
        // Problems that would fail only their variable at run time still make the file invalid,
        // as validation before saving says.
        if (result.context.static_problems.length > 0) return fail(result.context.static_problems, null);
        const variables = result.context.variables;
        db.upsertVariables(variables);
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

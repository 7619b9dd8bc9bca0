/**
 * Reading a context file's variables: the shim imports context.py in the user's interpreter and
 * reports each variable, running none of them.
 */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import type { DatabaseDir } from '../database-dir.js';
import type { ContextMessage, LoadProblem } from './protocol.js';
import { ShimError, startShim, type OutputStream } from './shim-process.js';
import { programName } from '../program-name.js';

export type DescribeResult =
  | { ok: true; context: ContextMessage }
  | { ok: false; problems: LoadProblem[]; traceback: string | null };

export interface DescribeOptions {
  /** How long importing context.py may take (`context_load_timeout`). */
  timeoutMs: number;
  /** What the context prints while it is imported. */
  onOutput?: (stream: OutputStream, line: string) => void;
}

/** How long the shim may take to exit once it has answered. */
const EXIT_AFTER_ANSWER_MS = 2_000;

function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))}`;
}

/**
 * Loads `context.py` of a database directory with `python`. Load problems (including a missing
 * file and a load that takes too long) are a result; a shim that breaks the protocol or dies
 * without answering is a ShimError.
 */
export async function describeContext(
  dbDir: DatabaseDir,
  python: string,
  opts: DescribeOptions,
): Promise<DescribeResult> {
  const file = dbDir.contextFile;
  const missing = (message: string): DescribeResult => ({
    ok: false,
    problems: [{ kind: 'missing', message, file, line: null, column: null }],
    traceback: null,
  });
  if (!existsSync(file)) return missing(`no ${path.basename(file)} in ${dbDir.root}`);
  if (!statSync(file).isFile()) {
    return missing(`${file} is not a file (a directory?): the context must be a Python file of that name`);
  }
  const shim = startShim({
    python,
    command: 'describe',
    args: [file],
    cwd: dbDir.root,
    timeoutMs: opts.timeoutMs,
    onOutput: opts.onOutput,
    finalKinds: ['context', 'load_error'],
  });
  try {
    for await (const message of shim.messages) {
      if (message.kind === 'context') return { ok: true, context: message };
      if (message.kind === 'load_error') {
        return { ok: false, problems: message.problems, traceback: message.traceback };
      }
      if (message.kind !== 'hello') {
        shim.kill();
        throw new ShimError(`the Python shim sent '${message.kind}' while describing ${file}`, 'protocol', '');
      }
    }
    // finalKinds makes the iteration throw rather than end without an answer.
    throw new ShimError(`the Python shim ended without describing ${file}`, 'exited', '');
  } catch (err) {
    if (err instanceof ShimError && err.reason === 'timeout') {
      const limit = seconds(opts.timeoutMs);
      return {
        ok: false,
        problems: [
          {
            kind: 'timeout',
            message:
              `${path.basename(file)} took longer than ${limit} s to load ` +
              `(raise the limit with '${programName()} db-config context_load_timeout SECONDS')`,
            file,
            line: null,
            column: null,
          },
        ],
        traceback: err.stderrTail || null,
      };
    }
    throw err;
  } finally {
    // The answer is in; a context that keeps the interpreter alive (a thread) is not waited for.
    const stopTimer = setTimeout(() => shim.kill(), EXIT_AFTER_ANSWER_MS);
    await shim.exited;
    clearTimeout(stopTimer);
  }
}

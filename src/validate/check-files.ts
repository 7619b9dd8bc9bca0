/**
 * Checking context files: read each one, choose its target Python version, and run it through
 * one Pyodide validator. Shared by `amore-proto check` and `amore-proto context install`.
 */
import { readFileSync, statSync } from 'node:fs';
import { UsageError } from '../cli/errors.js';
import type { Diagnostic, FileReport } from './diagnostics.js';
import type { TargetResolver } from './target-python.js';
import { type ContextValidator, ValidatorError } from './validator.js';

/** Every path must be a readable file: anything else is a mistake in the command line. */
export function requireFiles(files: string[]): void {
  const bad: string[] = [];
  for (const file of files) {
    try {
      if (!statSync(file).isFile()) bad.push(`${file} is not a file`);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      bad.push(code === 'ENOENT' ? `${file} does not exist` : `cannot read ${file} (${code ?? String(err)})`);
    }
  }
  if (bad.length > 0) throw new UsageError(bad.join('; '));
}

/** A problem with checking the file at all, reported like the file's own problems. */
function fileProblem(kind: 'io' | 'internal', message: string): Diagnostic {
  return { severity: 'error', kind, message, line: null, column: null, variable: null, code: null };
}

/**
 * One report per file, in order. A file that cannot be read, or that the validator fails on, gets
 * an error of its own: the other files are still checked and reported.
 */
export async function checkFiles(
  files: string[],
  validator: ContextValidator,
  targets: TargetResolver,
): Promise<FileReport[]> {
  const reports: FileReport[] = [];
  for (const file of files) {
    const target = (await targets.forFile(file)).version;
    let bytes: Buffer;
    try {
      bytes = readFileSync(file);
    } catch (err) {
      reports.push({ file, target, diagnostics: [fileProblem('io', `cannot read: ${(err as Error).message}`)], source: null });
      continue;
    }
    let diagnostics: Diagnostic[];
    try {
      diagnostics = validator.check(bytes, file, target).diagnostics;
    } catch (err) {
      if (!(err instanceof ValidatorError)) throw err;
      diagnostics = [fileProblem('internal', err.message)];
    }
    reports.push({ file, target, diagnostics, source: bytes.toString('utf8') });
  }
  return reports;
}

/**
 * Checking context files: read each one, choose its target Python version, and run it through
 * one Pyodide validator. Shared by `amore-proto check` and `amore-proto context install`.
 */
import { readFileSync, statSync } from 'node:fs';
import { UsageError } from '../cli/errors.js';
import type { FileReport } from './diagnostics.js';
import type { TargetResolver } from './target-python.js';
import type { ContextValidator } from './validator.js';

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

export async function checkFiles(
  files: string[],
  validator: ContextValidator,
  targets: TargetResolver,
): Promise<FileReport[]> {
  const reports: FileReport[] = [];
  for (const file of files) {
    const bytes = readFileSync(file);
    const target = (await targets.forFile(file)).version;
    const reading = validator.check(bytes, file, target);
    reports.push({ file, target, diagnostics: reading.diagnostics, source: bytes.toString('utf8') });
  }
  return reports;
}

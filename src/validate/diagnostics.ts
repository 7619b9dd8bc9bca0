/**
 * What validating one context file finds, as static_reader.py reports it from inside Pyodide.
 * The JSON crosses from Python to TypeScript, so it is validated here like any shim message.
 */
import { z } from 'zod';

export const Diagnostic = z.object({
  severity: z.enum(['error', 'warning']),
  /** encoding | syntax | exception | context | pyflakes | syntax-warning; io | internal: the file could not be checked */
  kind: z.string(),
  message: z.string(),
  /** 1-based; null only for problems of the whole file. */
  line: z.number().int().nullable(),
  /** 1-based, in characters. */
  column: z.number().int().nullable(),
  variable: z.string().nullable(),
  /** pyflakes' message class, the warning category, or a context problem's scope (load|static). */
  code: z.string().nullable(),
});
export type Diagnostic = z.infer<typeof Diagnostic>;

export const StaticReading = z.object({
  diagnostics: z.array(Diagnostic),
  /** The variables seen in the source, in definition order. */
  variables: z.array(
    z.object({ name: z.string(), title: z.string().nullable(), line: z.number().int().nullable() }),
  ),
  /** False when the source builds variables in ways the AST does not show. */
  complete: z.boolean(),
});
export type StaticReading = z.infer<typeof StaticReading>;

/** A Python version as validation targets it: always 3.x. */
export interface PythonVersion {
  major: 3;
  minor: number;
}

export function formatVersion(version: PythonVersion): string {
  return `${version.major}.${version.minor}`;
}

/** The result for one file, as reported by `check` and `context install`. */
export interface FileReport {
  /** The path as the user gave it. */
  file: string;
  /** The Python version whose grammar the file was checked against. */
  target: PythonVersion;
  diagnostics: Diagnostic[];
  /** The file's text, for showing the offending line; null when it could not be read. */
  source: string | null;
}

export function countBySeverity(reports: FileReport[]): { errors: number; warnings: number } {
  let errors = 0;
  let warnings = 0;
  for (const report of reports) {
    for (const d of report.diagnostics) {
      if (d.severity === 'error') errors += 1;
      else warnings += 1;
    }
  }
  return { errors, warnings };
}

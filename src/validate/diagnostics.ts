/**
 * What validating context files finds, and how it is counted. The JSON that crosses from
 * Pyodide is validated in static-reading.ts, which only the validator itself loads.
 */
export type { Diagnostic, StaticReading } from './static-reading.js';
import type { Diagnostic } from './static-reading.js';

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

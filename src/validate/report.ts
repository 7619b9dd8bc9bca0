/**
 * How `check` shows what it found: `file:line:col: error|warning: message` lines (with the source
 * line and a caret in a terminal), one JSON document, or GitHub Actions workflow commands.
 */
import { styleText } from 'node:util';
import { countBySeverity, type Diagnostic, type FileReport, formatVersion } from './diagnostics.js';
import { plural } from '../text.js';
import type { PyflakesStatus } from './validator.js';
import { programName } from '../program-name.js';

export const OUTPUT_FORMATS = ['text', 'json', 'github'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export interface TextOptions {
  /** Show the offending source line with a caret under the column. */
  showSource: boolean;
  color: boolean;
}

/** Colour only in a terminal, and never when NO_COLOR is set (https://no-color.org). */
export function wantColor(stream: NodeJS.WriteStream, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  return Boolean(stream.isTTY);
}

function location(file: string, d: Diagnostic): string {
  if (d.line === null) return file;
  return d.column === null ? `${file}:${d.line}` : `${file}:${d.line}:${d.column}`;
}

function sourceExcerpt(source: string, d: Diagnostic): string[] {
  if (d.line === null) return [];
  const text = source.split(/\r\n|\n|\r/)[d.line - 1];
  if (text === undefined) return [];
  const gutter = String(d.line);
  const pad = ' '.repeat(gutter.length);
  const lines = [`  ${gutter} | ${text}`];
  if (d.column !== null && d.column >= 1) {
    // Keep tabs so that the caret lines up with the character above it.
    const lead = Array.from(text).slice(0, d.column - 1).map((ch) => (ch === '\t' ? '\t' : ' ')).join('');
    lines.push(`  ${pad} | ${lead}^`);
  }
  return lines;
}

export function formatDiagnosticText(file: string, d: Diagnostic, source: string | null, opts: TextOptions): string {
  const paint = (format: Parameters<typeof styleText>[0], text: string): string =>
    opts.color ? styleText(format, text) : text;
  const [first = '', ...rest] = d.message.split('\n');
  const severity = d.severity === 'error' ? paint(['bold', 'red'], 'error') : paint(['bold', 'yellow'], 'warning');
  const lines = [`${paint('bold', location(file, d))}: ${severity}: ${first}`, ...rest.map((l) => `    ${l}`)];
  if (opts.showSource && source !== null) lines.push(...sourceExcerpt(source, d).map((l) => paint('dim', l)));
  return lines.join('\n');
}

export function formatText(reports: FileReport[], opts: TextOptions): string {
  const out: string[] = [];
  for (const report of reports) {
    for (const d of report.diagnostics) out.push(formatDiagnosticText(report.file, d, report.source, opts));
  }
  return out.length > 0 ? `${out.join('\n')}\n` : '';
}

/** The closing line of the text format: what was found in how many files. */
export function summaryLine(reports: FileReport[]): string {
  const { errors, warnings } = countBySeverity(reports);
  const files = plural(reports.length, 'file');
  if (errors === 0 && warnings === 0) return `${files} checked: no problems`;
  return `${files} checked: ${plural(errors, 'error')}, ${plural(warnings, 'warning')}`;
}

export function formatJson(reports: FileReport[], pyflakes: PyflakesStatus): string {
  const { errors, warnings } = countBySeverity(reports);
  const document = {
    files: reports.map((r) => ({
      file: r.file,
      python_version: formatVersion(r.target),
      diagnostics: r.diagnostics,
    })),
    errors,
    warnings,
    pyflakes: pyflakes.available
      ? { available: true, version: pyflakes.version }
      : { available: false, reason: pyflakes.reason },
  };
  return `${JSON.stringify(document, null, 2)}\n`;
}

/** Workflow-command escaping: https://github.com/actions/toolkit/blob/main/packages/core/src/command.ts */
function escapeData(text: string): string {
  return text.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
}

function escapeProperty(text: string): string {
  return escapeData(text).replace(/:/g, '%3A').replace(/,/g, '%2C');
}

export function formatGithub(reports: FileReport[]): string {
  const out: string[] = [];
  for (const report of reports) {
    for (const d of report.diagnostics) {
      const props = [`file=${escapeProperty(report.file)}`];
      if (d.line !== null) props.push(`line=${d.line}`);
      if (d.line !== null && d.column !== null) props.push(`col=${d.column}`);
      props.push(`title=${escapeProperty(`${programName()} check (${d.kind})`)}`);
      out.push(`::${d.severity} ${props.join(',')}::${escapeData(d.message)}`);
    }
  }
  return out.length > 0 ? `${out.join('\n')}\n` : '';
}

/**
 * The run table written out: aligned text for a terminal, Markdown as DAMNIT's GUI exports it,
 * CSV and JSON for programs. CSV and JSON are written as the rows are read; text and Markdown
 * align their columns, so they hold the cells' text until the last row is read.
 */
import { once } from 'node:events';
import { styleText } from 'node:util';
import { pythonFloatRepr } from '../db/python-format.js';
import { displayText, timestampText, valueText } from './cell-text.js';
import type { Cell, TableColumn, TableRow } from './read-table.js';

export const TABLE_FORMATS = ['text', 'markdown', 'csv', 'json'] as const;
export type TableFormat = (typeof TABLE_FORMATS)[number];

export interface TableOptions {
  /** Error messages in full, and no cell cut short. */
  long: boolean;
  /** Colour errors (a terminal without NO_COLOR). */
  color: boolean;
}

/** Writes in large pieces and waits when the reader is slower than the table. */
class ChunkedOutput {
  private parts: string[] = [];
  private size = 0;

  constructor(private readonly out: NodeJS.WritableStream) {}

  push(text: string): void {
    this.parts.push(text);
    this.size += text.length;
  }

  get full(): boolean {
    return this.size >= 1 << 16;
  }

  async flush(): Promise<void> {
    if (this.size === 0) return;
    const chunk = this.parts.join('');
    this.parts = [];
    this.size = 0;
    if (!this.out.write(chunk)) await once(this.out, 'drain');
  }
}

const MAX_CELL = 32;

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ');
}

function shortened(text: string): string {
  return text.length > MAX_CELL ? `${text.slice(0, MAX_CELL - 1)}…` : text;
}

/** Text: Run, Comment (when any run has one), then the variables under their titles. */
async function writeText(out: ChunkedOutput, columns: readonly TableColumn[], rows: Iterable<TableRow>, opts: TableOptions): Promise<void> {
  const fit = opts.long ? oneLine : (t: string): string => shortened(oneLine(t));
  const header = ['Run', 'Comment', ...columns.map((c) => oneLine(c.title))];
  const widths = header.map((h) => h.length);
  const body: string[][] = [];
  const failed: boolean[][] = [];
  let comments = false;
  for (const row of rows) {
    const texts = new Array<string>(header.length);
    texts[0] = String(row.run);
    texts[1] = row.comment === null ? '' : fit(valueText(row.comment, true));
    if (texts[1] !== '') comments = true;
    for (let i = 0; i < row.cells.length; i++) {
      const cell = row.cells[i];
      texts[i + 2] = cell === undefined ? '' : fit(displayText(cell, opts.long));
    }
    for (let i = 0; i < texts.length; i++) {
      const length = (texts[i] as string).length;
      if (length > (widths[i] as number)) widths[i] = length;
    }
    body.push(texts);
    if (opts.color) failed.push([false, false, ...row.cells.map((c) => c?.error != null)]);
  }
  const shown = header.map((_, i) => i).filter((i) => i !== 1 || comments);
  const last = shown.length - 1;
  const line = (cells: string[], paint?: boolean[]): string => {
    let text = '';
    for (let k = 0; k <= last; k++) {
      const i = shown[k] as number;
      const cell = cells[i] as string;
      text += paint?.[i] ? styleText('yellow', cell) : cell;
      if (k < last) text += ' '.repeat((widths[i] as number) - cell.length + 2);
    }
    return `${text.trimEnd()}\n`;
  };
  out.push(line(header));
  out.push(line(widths.map((w) => '-'.repeat(w))));
  for (let i = 0; i < body.length; i++) {
    out.push(line(body[i] as string[], failed[i]));
    if (out.full) await out.flush();
  }
  if (body.length === 0) out.push('(no runs yet)\n');
}

/**
 * The GUI's Markdown export: its columns (Proposal, Run, Timestamp, Comment, the variables;
 * not its Status check boxes), values in its notation without units, and its layout: a pipe
 * table whose cells are not padded, under a row of dashes as wide as the padded column.
 */
async function writeMarkdown(out: ChunkedOutput, columns: readonly TableColumn[], rows: Iterable<TableRow>, opts: TableOptions): Promise<void> {
  const cell = (text: string): string => oneLine(text).trim().replace(/\|/g, '\\|');
  const header = ['Proposal', 'Run', 'Timestamp', 'Comment', ...columns.map((c) => c.title)].map(cell);
  const widths = header.map((h) => h.length + 2);
  const body: string[][] = [];
  for (const row of rows) {
    const cells = [
      String(row.proposal),
      String(row.run),
      timestampText(row.startTime),
      row.comment === null ? '' : valueText(row.comment, true),
      ...row.cells.map((c) => (c === undefined ? '' : valueText(c, opts.long))),
    ].map(cell);
    cells.forEach((c, i) => {
      if (c.length > (widths[i] ?? 0)) widths[i] = c.length;
    });
    body.push(cells);
  }
  out.push(`|${header.join('|')}|\n`);
  out.push(`|${widths.map((w) => `:${'-'.repeat(w + 1)}`).join('|')}|\n`);
  for (const cells of body) {
    out.push(`|${cells.join('|')}|\n`);
    if (out.full) await out.flush();
  }
}

function csvField(text: string): string {
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** A number as Python writes it to CSV: a float as its repr(), so 2.0 keeps its `.0`. */
function csvNumber(cell: Cell): string {
  const n = cell.value as number;
  if (!cell.isFloat) return String(n);
  const magnitude = Math.abs(n);
  // Where JavaScript and Python write the same digits, without the slower general path.
  if (magnitude >= 1e-4 && magnitude < 1e16) return Number.isInteger(n) ? `${n}.0` : String(n);
  return pythonFloatRepr(n);
}

function csvCell(cell: Cell | undefined, long: boolean): string {
  if (cell === undefined) return '';
  if (typeof cell.value === 'number' && cell.error === null) return csvNumber(cell);
  return csvField(valueText(cell, long));
}

/** CSV as the GUI exports it (its columns, titles as headers), errors in their cells. */
async function writeCsv(out: ChunkedOutput, columns: readonly TableColumn[], rows: Iterable<TableRow>, opts: TableOptions): Promise<void> {
  out.push(`${['Proposal', 'Run', 'Timestamp', 'Comment', ...columns.map((c) => c.title)].map(csvField).join(',')}\n`);
  for (const row of rows) {
    const fields = [String(row.proposal), String(row.run), csvField(timestampText(row.startTime)), csvCell(row.comment ?? undefined, true)];
    for (const c of row.cells) fields.push(csvCell(c, opts.long));
    out.push(`${fields.join(',')}\n`);
    if (out.full) await out.flush();
  }
}

/** A value for JSON: numbers and strings as stored, a blob as the text the GUI shows for it. */
function jsonValue(cell: Cell): number | string | null {
  if (cell.error !== null) return null;
  if (cell.blob !== null) return valueText(cell, false);
  return cell.value;
}

/**
 * One JSON document, `{"columns": [...], "runs": [...]}`, one run per line: a program may read
 * it whole or line by line. Errors and units are kept apart from the values.
 */
async function writeJson(out: ChunkedOutput, columns: readonly TableColumn[], rows: Iterable<TableRow>): Promise<void> {
  out.push(`{"columns": ${JSON.stringify(columns)},\n"runs": [`);
  let first = true;
  for (const row of rows) {
    const values: Record<string, number | string | null> = {};
    const units: Record<string, string> = {};
    const errors: Record<string, { class: string; message: string }> = {};
    row.cells.forEach((cell, i) => {
      if (cell === undefined) return;
      const name = (columns[i] as TableColumn).name;
      values[name] = jsonValue(cell);
      if (cell.units !== null) units[name] = cell.units;
      if (cell.error !== null) errors[name] = { class: cell.error.cls, message: cell.error.message };
    });
    const record = {
      proposal: row.proposal,
      run: row.run,
      start_time: row.startTime,
      comment: row.comment === null ? null : jsonValue(row.comment),
      values,
      units,
      errors,
    };
    out.push(`${first ? '\n' : ',\n'}${JSON.stringify(record)}`);
    first = false;
    if (out.full) await out.flush();
  }
  out.push('\n]}\n');
}

export async function writeTable(
  format: TableFormat,
  columns: readonly TableColumn[],
  rows: Iterable<TableRow>,
  opts: TableOptions,
  stream: NodeJS.WritableStream = process.stdout,
): Promise<void> {
  const out = new ChunkedOutput(stream);
  switch (format) {
    case 'text':
      await writeText(out, columns, rows, opts);
      break;
    case 'markdown':
      await writeMarkdown(out, columns, rows, opts);
      break;
    case 'csv':
      await writeCsv(out, columns, rows, opts);
      break;
    case 'json':
      await writeJson(out, columns, rows);
      break;
  }
  await out.flush();
}

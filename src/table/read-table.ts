/**
 * The run table read straight from `run_info` and `run_variables`, one run at a time.
 *
 * The `runs` view pivots with one CASE per variable over every stored result, which takes
 * seconds at 10,000 runs x 100 variables. Here SQLite builds one JSON array per run (found
 * through the (proposal, run, ...) index) and the rows come out in order as they are read, so
 * a machine format can be written while the rest is still being read.
 */
import type Database from 'better-sqlite3';
import type { DamnitDb } from '../db/database.js';

/** The run comment is the `run_variables` row of this name (the GUI's Comment column). */
export const COMMENT_NAME = 'comment';

export interface TableColumn {
  name: string;
  title: string;
}

/** What a stored blob summary holds, as the GUI tells them apart. */
export type BlobSummary =
  | { kind: 'image' }
  | { kind: 'trendline' }
  | { kind: 'array'; dtype: string | null; shape: string | null }
  | { kind: 'complex'; re: number; im: number }
  | { kind: 'bytes'; length: number };

export interface Cell {
  /** The stored summary; null for an error, a blob or a NULL. */
  value: number | string | null;
  /** A REAL: Python shows 2.0 as a float, not as the int 2. */
  isFloat: boolean;
  blob: BlobSummary | null;
  units: string | null;
  error: { cls: string; message: string } | null;
}

export interface TableRow {
  proposal: number;
  run: number;
  startTime: number | null;
  comment: Cell | null;
  /** One per column, in the columns' order; undefined where the run has no result. */
  cells: (Cell | undefined)[];
}

/**
 * Every column shown, in the order of the database's variable names (the context's order,
 * then names recorded without a `variables` row), under its title. `match` keeps the columns
 * whose name or title contains one of the strings, case-insensitively.
 */
export function tableColumns(db: DamnitDb, match: readonly string[] = []): TableColumn[] {
  const catalogue = db.connection
    .prepare<[], { name: string; title: string | null }>('SELECT name, title FROM variables ORDER BY rowid')
    .all();
  const titles = new Map(catalogue.map((v) => [v.name, v.title ?? v.name]));
  // The order of DamnitDb.variableNames(), with a third of its scan: only names that are not in
  // the catalogue go through DISTINCT.
  const recorded = db.connection
    .prepare<[], { name: string }>(
      'SELECT DISTINCT name FROM run_variables WHERE name NOT IN (SELECT name FROM variables) ORDER BY name',
    )
    .all();
  const wanted = match.map((m) => m.toLowerCase());
  return [...catalogue, ...recorded]
    .map((v) => v.name)
    .filter((name) => name !== COMMENT_NAME)
    .map((name) => ({ name, title: titles.get(name) ?? name }))
    .filter(
      (c) => wanted.length === 0 || wanted.some((m) => c.name.toLowerCase().includes(m) || c.title.toLowerCase().includes(m)),
    );
}

/**
 * One JSON array per run: [names, values, attributes, blobs]; names and values side by side,
 * attributes (valid JSON only) and blobs, which few cells have, as objects keyed by name.
 * An integral REAL is wrapped in an array (JSON would make 2.0 the integer 2); a blob's value
 * is left out of `values` and described in `blobs` by its summary type and first bytes.
 */
const RUN_CELLS = `
  SELECT json_array(
    json_group_array(name),
    json_group_array(CASE
      WHEN typeof(value) = 'real' AND value = CAST(value AS INTEGER) THEN json_array(value)
      WHEN typeof(value) = 'blob' THEN NULL
      ELSE value END),
    json_group_object(name, json(attributes)) FILTER (WHERE json_valid(attributes)),
    json_group_object(name, json_array(summary_type, hex(substr(value, 1, 128)), length(value)))
      FILTER (WHERE typeof(value) = 'blob'))
  FROM run_variables v
  WHERE v.proposal = i.proposal AND v.run = i.run`;

type RunCellsJson = [string[], unknown[], Record<string, unknown> | null, Record<string, [string | null, string, number]> | null];

/** The rows of the table in (proposal, run) order, read as they are consumed. */
export function* tableRows(connection: Database.Database, columns: readonly TableColumn[], match: boolean): Generator<TableRow> {
  const only = match ? ' AND name IN (SELECT value FROM json_each(@names))' : '';
  const statement = connection
    .prepare(`SELECT i.proposal, i.run, i.start_time, (${RUN_CELLS}${only}) FROM run_info i ORDER BY i.proposal, i.run`)
    .raw();
  const params = match ? [{ names: JSON.stringify([COMMENT_NAME, ...columns.map((c) => c.name)]) }] : [];
  const columnOf = new Map(columns.map((c, i) => [c.name, i]));
  for (const [proposal, run, startTime, json] of statement.iterate(...params) as Iterable<[number, number, number | null, string]>) {
    const [names, values, attributes, blobs] = JSON.parse(json) as RunCellsJson;
    const cells = new Array<Cell | undefined>(columns.length).fill(undefined);
    let comment: Cell | null = null;
    const cellOf = new Map<string, Cell>();
    for (let i = 0; i < names.length; i++) {
      const name = names[i] as string;
      const column = columnOf.get(name);
      if (column === undefined && name !== COMMENT_NAME) continue;
      const cell = plainCell(values[i]);
      if (column === undefined) comment = cell;
      else cells[column] = cell;
      // Only the few cells with attributes or a blob are looked up by name.
      if (attributes !== null || blobs !== null) cellOf.set(name, cell);
    }
    for (const name in attributes) {
      const cell = cellOf.get(name);
      if (cell !== undefined) addAttributes(cell, attributes[name]);
    }
    for (const name in blobs) {
      const cell = cellOf.get(name);
      const blob = blobs[name];
      if (cell !== undefined && blob !== undefined) cell.blob = blobSummary(...blob);
    }
    yield { proposal, run, startTime: typeof startTime === 'number' ? startTime : null, comment, cells };
  }
}

function plainCell(stored: unknown): Cell {
  const isFloat = Array.isArray(stored);
  const raw = isFloat ? (stored as unknown[])[0] : stored;
  const value = typeof raw === 'number' || typeof raw === 'string' ? raw : null;
  return { value, isFloat: isFloat || (typeof raw === 'number' && !Number.isInteger(raw)), blob: null, units: null, error: null };
}

/** Units and errors from a cell's attributes; attributes another writer left unreadable are ignored. */
function addAttributes(cell: Cell, attributes: unknown): void {
  if (attributes === null || typeof attributes !== 'object') return;
  const { units, error, error_cls: cls } = attributes as Record<string, unknown>;
  if (typeof units === 'string' && units !== '') cell.units = units;
  if (typeof error === 'string') cell.error = { cls: typeof cls === 'string' ? cls : 'Error', message: error };
}

const PNG_MAGIC = '89504E470D0A1A0A';
const NUMPY_MAGIC = '934E554D5059';

function blobSummary(summaryType: string | null, hex: string, length: number): BlobSummary {
  if (hex.startsWith(PNG_MAGIC)) return { kind: 'image' };
  if (summaryType === 'trendline') return { kind: 'trendline' };
  if (hex.startsWith(NUMPY_MAGIC)) return { kind: 'array', ...numpyHeader(Buffer.from(hex, 'hex')) };
  if (length === 16 && (summaryType === 'complex' || summaryType === null)) {
    const bytes = Buffer.from(hex, 'hex');
    return { kind: 'complex', re: bytes.readDoubleLE(0), im: bytes.readDoubleLE(8) };
  }
  return { kind: 'bytes', length };
}

const DTYPE_KINDS: Record<string, string> = { f: 'float', i: 'int', u: 'uint', c: 'complex' };

/** dtype and shape from the header of `.npy` bytes, as numpy names them ('float64', '(3, 4)'). */
function numpyHeader(bytes: Buffer): { dtype: string | null; shape: string | null } {
  const header = bytes.toString('latin1');
  const descr = /'descr':\s*'([<>|=]?)([a-zA-Z])(\d+)'/.exec(header);
  const shape = /'shape':\s*(\([^)]*\))/.exec(header);
  let dtype: string | null = null;
  if (descr) {
    const [, , kind = '', size = ''] = descr;
    const bits = Number(size) * 8;
    dtype = kind === 'b' ? 'bool' : DTYPE_KINDS[kind] !== undefined ? `${DTYPE_KINDS[kind]}${bits}` : `${kind}${size}`;
  }
  return { dtype, shape: shape?.[1] ?? null };
}

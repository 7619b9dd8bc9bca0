import { copyFileSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { PROTOCOL_VERSION, type SummaryValue, type VariableInfo, type VariableResultMessage } from '../../src/context/protocol.js';
import { DatabaseDir } from '../../src/database-dir.js';

/** The format-2 database the reference DAMNIT 0.2 wrote for proposal 1234 (../shared/reference). */
export const REFERENCE_FORMAT2_DB = path.resolve(
  process.env.DAMNIT_SHARED_DIR ?? '/work/shared',
  'reference',
  'damnit-0.2-run',
  'runs.sqlite',
);

/** A database directory holding a copy of the reference's format-2 database. */
export function copyReferenceDb(dir: string): DatabaseDir {
  const dbDir = new DatabaseDir(dir);
  copyFileSync(REFERENCE_FORMAT2_DB, dbDir.databaseFile);
  return dbDir;
}

export function variable(name: string, extra: Partial<VariableInfo> = {}): VariableInfo {
  return {
    name,
    title: name.replace(/_/g, ' '),
    description: null,
    summary: null,
    data: 'raw',
    cluster: false,
    tags: [],
    transient: false,
    units: null,
    parameters: [],
    dependencies: [],
    line: null,
    ...extra,
  };
}

export function result(
  name: string,
  value: SummaryValue | null,
  extra: Partial<VariableResultMessage> = {},
): VariableResultMessage {
  return {
    protocol: PROTOCOL_VERSION,
    kind: 'variable_result',
    name,
    value,
    summary_type: null,
    summary_method: '',
    max_diff: null,
    attributes: null,
    duration_s: 0.01,
    ...extra,
  };
}

export function failure(name: string, message: string, errorClass: string): VariableResultMessage {
  return result(name, null, { summary_method: null, attributes: { error: message, error_cls: errorClass } });
}

/** A separate plain connection, as another reader (the GUI) would have; read-only use. */
export function inspect<T>(file: string, read: (conn: Database.Database) => T): T {
  const conn = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return read(conn);
  } finally {
    conn.close();
  }
}

/** Every row of a table, with the storage class of each column, in a stable order. */
export function dumpTable(conn: Database.Database, table: string): unknown[] {
  const columns = (conn.pragma(`table_info(${table})`) as { name: string }[]).map((c) => c.name);
  const select = columns.map((c) => `quote(${c}) AS ${c}, typeof(${c}) AS ${c}_type`).join(', ');
  return conn.prepare(`SELECT ${select} FROM ${table} ORDER BY ${columns.join(', ')}`).all();
}

/**
 * Opening `runs.sqlite`: connection settings, creating a new database at format 4, and
 * upgrading formats 1 to 3 on open, one transaction per step. Legacy format 0 and formats
 * newer than ours are refused rather than guessed at.
 */
import { chmodSync, existsSync, statSync } from 'node:fs';
import os from 'node:os';
import Database from 'better-sqlite3';
import {
  DATA_FORMAT_VERSION,
  ORPHAN_TAG_TRIGGER_DDL,
  SCHEMA_DDL,
  TAG_TABLES_DDL,
} from './schema.js';

/** A database this backend cannot open as it is; the message names the file and why. */
export class DatabaseFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DatabaseFormatError';
  }
}

/** The oldest format upgraded on open. */
export const MIN_UPGRADABLE_VERSION = 1;

export interface Migration {
  /** The format the database is at once this step is applied. */
  toVersion: number;
  description: string;
  apply: (conn: Database.Database) => void;
}

function hasColumn(conn: Database.Database, table: string, column: string): boolean {
  const columns = conn.pragma(`table_info(${table})`) as { name: string }[];
  return columns.some((c) => c.name === column);
}

export const MIGRATIONS: readonly Migration[] = [
  {
    toVersion: 2,
    description: 'add the attributes column to run_variables',
    apply: (conn) => {
      // Some databases written by DAMNIT 0.2 already have it while still saying format 1.
      if (!hasColumn(conn, 'run_variables', 'attributes')) {
        conn.exec('ALTER TABLE run_variables ADD COLUMN attributes');
      }
    },
  },
  {
    toVersion: 3,
    description: 'add the tags and variable_tags tables',
    apply: (conn) => conn.exec(TAG_TABLES_DDL),
  },
  {
    toVersion: 4,
    description: 'add the trigger deleting a tag when its last variable loses it',
    apply: (conn) => conn.exec(ORPHAN_TAG_TRIGGER_DDL),
  },
];

export function pendingMigrations(fromVersion: number): Migration[] {
  return MIGRATIONS.filter((m) => m.toVersion > fromVersion && m.toVersion <= DATA_FORMAT_VERSION);
}

/** Other processes (the GUI, a second command) may hold the database briefly. */
export const BUSY_TIMEOUT_MS = 30_000;

/** Opens the SQLite file with our connection settings: WAL, foreign keys, busy timeout. */
export function openConnection(file: string, opts: { create: boolean }): Database.Database {
  let conn: Database.Database;
  try {
    conn = new Database(file, { fileMustExist: !opts.create, timeout: BUSY_TIMEOUT_MS });
  } catch (err) {
    throw new DatabaseFormatError(`cannot open ${file}: ${(err as Error).message}`);
  }
  try {
    conn.pragma('foreign_keys = ON');
    // "file is not a database" and the like surface at the first read.
    conn.prepare('SELECT count(*) FROM sqlite_master').get();
  } catch (err) {
    conn.close();
    throw new DatabaseFormatError(`cannot open ${file}: ${(err as Error).message}`);
  }
  return conn;
}

/** Switched on only once the database is known to be ours, so a refused file stays untouched. */
function useWriteAheadLog(conn: Database.Database): void {
  conn.pragma('journal_mode = WAL');
}

/**
 * A proposal's database is shared by every member of the experiment team, as the reference
 * does: the owner makes it (and WAL's side files, which readers also write) writable for all.
 */
export function shareWithEveryone(file: string): void {
  const uid = os.userInfo().uid;
  for (const f of [file, `${file}-wal`, `${file}-shm`]) {
    try {
      if (existsSync(f) && statSync(f).uid === uid) chmodSync(f, 0o666);
    } catch {
      // Permissions are a convenience for colleagues; failing to widen them is not an error.
    }
  }
}

function hasTable(conn: Database.Database, name: string): boolean {
  return conn.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(name) !== undefined;
}

function isEmpty(conn: Database.Database): boolean {
  return conn.prepare('SELECT 1 FROM sqlite_master LIMIT 1').get() === undefined;
}

/**
 * The database's `data_format_version`: 0 when missing (the legacy format had none).
 * Like the reference's int(), integral reals and decimal text are accepted.
 */
export function readFormatVersion(conn: Database.Database, file: string): number {
  if (!hasTable(conn, 'metameta')) {
    throw new DatabaseFormatError(`${file} is not a DAMNIT database (it has no metameta table)`);
  }
  const row = conn
    .prepare("SELECT value, typeof(value) AS storage FROM metameta WHERE key = 'data_format_version'")
    .get() as { value: unknown; storage: string } | undefined;
  if (row === undefined) return 0;
  const { value } = row;
  let version: number | undefined;
  if (typeof value === 'number' && Number.isInteger(value)) version = value;
  else if (typeof value === 'string' && /^\s*\+?\d+\s*$/.test(value)) version = Number.parseInt(value, 10);
  if (version === undefined || version < 0) {
    throw new DatabaseFormatError(
      `cannot open ${file}: its data_format_version ${JSON.stringify(value)} is not a format version`,
    );
  }
  return version;
}

function checkVersionIsOpenable(version: number, file: string): void {
  if (version > DATA_FORMAT_VERSION) {
    throw new DatabaseFormatError(
      `cannot open ${file}: it is at data format ${version}, newer than the ${DATA_FORMAT_VERSION} ` +
        'this backend knows; use a newer backend for it',
    );
  }
  if (version < MIN_UPGRADABLE_VERSION) {
    throw new DatabaseFormatError(
      `cannot open ${file}: it is at the legacy data format v${version}, which this backend cannot ` +
        "upgrade (the reference DAMNIT's 'migrate v0-to-v1' can; or contact da-support@xfel.eu)",
    );
  }
}

/** What opening did to the schema. */
export interface SchemaState {
  /** The database was created by this open. */
  created: boolean;
  /** The upgrade this open applied, if any. */
  upgrade: { fromVersion: number; toVersion: number; steps: Migration[] } | null;
}

/**
 * Brings the database to format 4: creates the schema in an empty file (when `create`), or
 * upgrades an older format. Each step checks the version again inside its own write
 * transaction, so two processes opening the same old database upgrade it once.
 */
export function prepareSchema(conn: Database.Database, file: string, opts: { create: boolean }): SchemaState {
  // Prepared on use: in a new file the metameta table does not exist yet.
  const setVersion = (version: number): void => {
    conn
      .prepare(
        "INSERT INTO metameta (key, value) VALUES ('data_format_version', ?) " +
          'ON CONFLICT (key) DO UPDATE SET value = excluded.value',
      )
      .run(BigInt(version));
  };

  if (isEmpty(conn)) {
    if (!opts.create) throw new DatabaseFormatError(`${file} is empty, not a DAMNIT database`);
    useWriteAheadLog(conn);
    const created = conn
      .transaction(() => {
        // Checked again under the write lock: another process may have created it meanwhile.
        if (!isEmpty(conn)) return false;
        conn.exec(SCHEMA_DDL);
        setVersion(DATA_FORMAT_VERSION);
        return true;
      })
      .immediate();
    if (created) return { created, upgrade: null };
  }

  const fromVersion = readFormatVersion(conn, file);
  checkVersionIsOpenable(fromVersion, file);
  useWriteAheadLog(conn);
  const applied: Migration[] = [];
  for (const step of pendingMigrations(fromVersion)) {
    conn
      .transaction(() => {
        if (readFormatVersion(conn, file) !== step.toVersion - 1) return;
        step.apply(conn);
        setVersion(step.toVersion);
        applied.push(step);
      })
      .immediate();
  }
  const upgrade = applied.length > 0 ? { fromVersion, toVersion: DATA_FORMAT_VERSION, steps: applied } : null;
  return { created: false, upgrade };
}

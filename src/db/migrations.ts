/**
 * Opening `runs.sqlite`: connection settings, creating a new database at format 4, and
 * upgrading formats 1 to 3 on open, one transaction per step. Legacy format 0 and formats
 * newer than ours are refused rather than guessed at. Read-only opens check the format and
 * change nothing.
 */
import Database from 'better-sqlite3';
import { DatabaseDamagedError, isDamaged } from './errors.js';
import {
  DATA_FORMAT_VERSION,
  ORPHAN_TAG_TRIGGER_DDL,
  SCHEMA_DDL,
  TAG_TABLES_DDL,
} from './schema.js';
import { programName } from '../program-name.js';

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
/** How long switching a WAL database back to the rollback journal waits for other users of it. */
const WAL_SWITCH_WAIT_MS = 1_000;

export interface ConnectionOptions {
  create: boolean;
  /** Open for reading only: nothing is written, not even a journal, so a read-only directory will do. */
  readonly?: boolean;
  /** How long one statement waits for another process's lock; BUSY_TIMEOUT_MS by default. */
  busyTimeoutMs?: number;
}

/** Opens the SQLite file with our connection settings: foreign keys, busy timeout. */
export function openConnection(file: string, opts: ConnectionOptions): Database.Database {
  let conn: Database.Database;
  try {
    conn = new Database(file, {
      fileMustExist: !opts.create,
      readonly: opts.readonly ?? false,
      timeout: opts.busyTimeoutMs ?? BUSY_TIMEOUT_MS,
    });
  } catch (err) {
    throw new DatabaseFormatError(`cannot open ${file}: ${(err as Error).message}`);
  }
  try {
    conn.pragma('foreign_keys = ON');
    // "file is not a database" and the like surface at the first read.
    conn.prepare('SELECT count(*) FROM sqlite_master').get();
  } catch (err) {
    conn.close();
    if (isDamaged(err)) throw new DatabaseDamagedError(file, `SQLite: ${(err as Error).message}`);
    throw new DatabaseFormatError(`cannot open ${file}: ${(err as Error).message}`);
  }
  return conn;
}

/**
 * SQLite's rollback journal, as the reference: WAL keeps an index in shared memory that every
 * user of the file must map, which hosts of a network file system cannot share and readers
 * without write permission cannot create. A database an earlier version of ours left in WAL is
 * checkpointed and switched back here, which needs it to be open nowhere else: when another
 * process still has it open, it stays in WAL until the next writer opens it alone.
 */
function useRollbackJournal(conn: Database.Database): JournalSwitch {
  if (conn.pragma('journal_mode', { simple: true }) !== 'wal') return 'none';
  // A moment's wait, not the connection's long one: the switch can be done next time.
  const timeout = Number(conn.pragma('busy_timeout', { simple: true }));
  conn.pragma(`busy_timeout = ${Math.min(timeout, WAL_SWITCH_WAIT_MS)}`);
  try {
    conn.pragma('journal_mode = DELETE');
    return 'switched';
  } catch {
    // SQLITE_BUSY: another process has it open; nothing is lost, only the switch waits.
    return 'still-wal';
  } finally {
    conn.pragma(`busy_timeout = ${timeout}`);
  }
}

/** What opening did about a database left in WAL mode. */
export type JournalSwitch = 'none' | 'switched' | 'still-wal';

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

/**
 * For a read-only open: the database must be at our format already, since only a writer can
 * upgrade it.
 */
export function checkFormatForReading(conn: Database.Database, file: string): void {
  const version = readFormatVersion(conn, file);
  checkVersionIsOpenable(version, file);
  if (version < DATA_FORMAT_VERSION) {
    throw new DatabaseFormatError(
      `${file} is at data format ${version}; a command that writes (${programName()} migrate) upgrades it ` +
        `to ${DATA_FORMAT_VERSION}, which this read-only command does not do`,
    );
  }
}

/** What opening did to the schema. */
export interface SchemaState {
  /** The database was created by this open. */
  created: boolean;
  /** The upgrade this open applied, if any. */
  upgrade: { fromVersion: number; toVersion: number; steps: Migration[] } | null;
  /** Whether this open moved a WAL database to the rollback journal. */
  journal: JournalSwitch;
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
    const created = conn
      .transaction(() => {
        // Checked again under the write lock: another process may have created it meanwhile.
        if (!isEmpty(conn)) return false;
        conn.exec(SCHEMA_DDL);
        setVersion(DATA_FORMAT_VERSION);
        return true;
      })
      .immediate();
    if (created) return { created, upgrade: null, journal: 'none' };
  }

  const fromVersion = readFormatVersion(conn, file);
  checkVersionIsOpenable(fromVersion, file);
  const journal = useRollbackJournal(conn);
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
  return { created: false, upgrade, journal };
}

/**
 * SQLite's answers that are not about our code: the file is locked by another process for too
 * long, or it is damaged. Each becomes one line naming the file and what to do, never a stack
 * trace.
 */
import Database from 'better-sqlite3';
import { CliError } from '../cli/errors.js';
import { programName } from '../program-name.js';

function sqliteCode(err: unknown): string | null {
  return err instanceof Database.SqliteError ? err.code : null;
}

/** Another process holds a lock we need (SQLITE_BUSY, SQLITE_LOCKED and their extended codes). */
export function isBusy(err: unknown): boolean {
  return /^SQLITE_(BUSY|LOCKED)/.test(sqliteCode(err) ?? '');
}

/** A page of the file is not what SQLite wrote (SQLITE_CORRUPT and its extended codes). */
export function isDamaged(err: unknown): boolean {
  return /^SQLITE_CORRUPT/.test(sqliteCode(err) ?? '');
}

export class DatabaseBusyError extends CliError {
  constructor(
    readonly file: string,
    /** How long a write may wait (db_busy_timeout). */
    readonly limitMs: number,
  ) {
    super(
      `${file} stayed locked by another process for over ${Math.round(limitMs / 1000)} s; gave up ` +
        `(raise the limit with '${programName()} db-config --num db_busy_timeout SECONDS')`,
    );
    this.name = 'DatabaseBusyError';
  }
}

export class DatabaseDamagedError extends CliError {
  constructor(
    readonly file: string,
    detail: string,
  ) {
    super(
      `${file} is damaged (${detail}): save what it still holds with ` +
        `'sqlite3 ${file} .recover | sqlite3 ${file}.recovered', check the copy, then put it in its place`,
    );
    this.name = 'DatabaseDamagedError';
  }
}

/** The database file a command opened last, to name it when SQLite fails later. */
let lastDatabaseFile: string | null = null;

export function rememberDatabaseFile(file: string): void {
  lastDatabaseFile = file;
}

/**
 * A locked or damaged database as its one-line error, naming `file` (by default the one this
 * process opened last); any other error as it is.
 */
export function explainDatabaseError(err: unknown, file: string | null = lastDatabaseFile): unknown {
  if (file === null || err instanceof CliError) return err;
  if (isDamaged(err)) return new DatabaseDamagedError(file, `SQLite: ${(err as Error).message}`);
  if (isBusy(err)) {
    return new CliError(`${file} is locked by another process and stayed so longer than this command waits; try again later`);
  }
  return err;
}

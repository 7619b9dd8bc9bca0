/**
 * The `metameta` table: the database's settings and facts (proposal, db_id, context_python...)
 * as key/value pairs, read back with their SQLite storage class.
 */
import type Database from 'better-sqlite3';
import type { StorageClass, TypedValue } from './python-format.js';

/** A metameta value as the caller sees it: integers beyond 2^53 stay exact as bigint. */
export type MetaValue = string | number | bigint | null;

export interface Metameta {
  get(key: string): MetaValue | undefined;
  /** The stored value with its SQLite storage class, e.g. to tell 2.0 (real) from 2. */
  getTyped(key: string): TypedValue | undefined;
  /** Integral numbers are stored as INTEGER, others as REAL, text as TEXT. */
  set(key: string, value: string | number | bigint): void;
  /** False when the key was not there. */
  delete(key: string): boolean;
  entries(): [string, unknown][];
  typedEntries(): [string, TypedValue][];
}

/** Metameta integers are read exactly; those that fit a JS number are given as one. */
function fromSqlite(value: unknown): MetaValue | Uint8Array {
  if (typeof value === 'bigint') {
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(value)
      : value;
  }
  return value as MetaValue | Uint8Array;
}

interface TypedRow {
  key: string;
  value: unknown;
  storage: StorageClass;
}

function typedValue(row: TypedRow): TypedValue {
  return { value: fromSqlite(row.value), storage: row.storage };
}

/** DAMNIT never stores blobs in metameta; should one be there, callers get its UTF-8 text. */
function plainValue(typed: TypedValue): MetaValue {
  return typed.value instanceof Uint8Array ? Buffer.from(typed.value).toString('utf8') : typed.value;
}

export class MetametaTable implements Metameta {
  private readonly selectOne: Database.Statement<[string], TypedRow>;
  private readonly selectAll: Database.Statement<[], TypedRow>;
  private readonly upsert: Database.Statement<[string, string | number | bigint]>;
  private readonly remove: Database.Statement<[string]>;

  constructor(conn: Database.Database) {
    this.selectOne = conn
      .prepare<[string], TypedRow>('SELECT key, value, typeof(value) AS storage FROM metameta WHERE key = ?')
      .safeIntegers(true);
    this.selectAll = conn
      .prepare<[], TypedRow>('SELECT key, value, typeof(value) AS storage FROM metameta ORDER BY rowid')
      .safeIntegers(true);
    this.upsert = conn.prepare(
      'INSERT INTO metameta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
    );
    this.remove = conn.prepare('DELETE FROM metameta WHERE key = ?');
  }

  getTyped(key: string): TypedValue | undefined {
    const row = this.selectOne.get(key);
    return row === undefined ? undefined : typedValue(row);
  }

  get(key: string): MetaValue | undefined {
    const typed = this.getTyped(key);
    return typed === undefined ? undefined : plainValue(typed);
  }

  set(key: string, value: string | number | bigint): void {
    if (typeof value === 'number') {
      if (!Number.isFinite(value)) throw new RangeError(`cannot store ${value} for ${key}`);
      this.upsert.run(key, Number.isSafeInteger(value) ? BigInt(value) : value);
    } else {
      this.upsert.run(key, value);
    }
  }

  delete(key: string): boolean {
    return this.remove.run(key).changes > 0;
  }

  typedEntries(): [string, TypedValue][] {
    return this.selectAll.all().map((row) => [row.key, typedValue(row)]);
  }

  entries(): [string, unknown][] {
    return this.typedEntries().map(([key, typed]) => [key, plainValue(typed)]);
  }
}

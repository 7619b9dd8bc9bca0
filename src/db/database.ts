/**
 * The run table, `runs.sqlite`: every read and write the backend makes goes through here.
 * The orchestrator is the only writer; the GUI and other DAMNIT tools read the same file.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import type Database from 'better-sqlite3';
import type { SummaryValue, VariableInfo, VariableResultMessage } from '../context/protocol.js';
import { type DatabaseDir, requireDatabaseDir } from '../database-dir.js';
import { CONFIG_DEFAULTS } from './config-keys.js';
import { checkFormatForReading, DatabaseFormatError, openConnection, prepareSchema, type SchemaState } from './migrations.js';
import { rememberDatabaseFile } from './errors.js';
import { prepareToWrite, shareOwnedPath } from '../sharing.js';
import { MetametaTable, type Metameta } from './metameta.js';
import { pythonJsonDumps } from './python-format.js';
import { buildViewsSql, VIEW_MAX_VARIABLES } from './schema.js';
import { programName } from '../program-name.js';

export type { Metameta, MetaValue } from './metameta.js';

export interface RunResults {
  /** Epoch seconds of the run's first train; goes to run_info.start_time. */
  startTime: number | null;
  variables: VariableResultMessage[];
}

/** A variable the GUI's users edit by hand (its `type` says which values it takes). */
export interface UserVariable {
  name: string;
  type: string;
  title: string | null;
  description: string | null;
  attributes: string | null;
}

export interface DamnitDb {
  readonly dir: DatabaseDir;
  /** Whether this open created the database or upgraded its format. */
  readonly schema: SchemaState;
  /** The SQLite connection, for reads this interface does not offer. */
  readonly connection: Database.Database;
  readonly metameta: Metameta;
  ensureRun(proposal: number, run: number, opts?: { startTime?: number | null; addedAt?: number }): void;
  /** Records runs not yet in run_info, in the order given, in one transaction. */
  ensureRuns(proposal: number, runs: readonly number[]): void;
  upsertVariables(vars: VariableInfo[]): void;
  userVariables(): UserVariable[];
  /** Adds user-editable variables (keeping any of the same name already there). */
  addUserVariables(vars: UserVariable[]): void;
  recordRunResults(proposal: number, run: number, results: RunResults): void;
  /** Every variable name: those of the `variables` table in insertion order, then other recorded names. */
  variableNames(): string[];
  /** The variables the wide views cannot show (beyond SQLite's column limit). */
  namesLeftOutOfViews(): string[];
  runNumbers(proposal?: number): number[];
  close(): void;
}

/** SQLite's ORDER BY of text (BINARY collation): by UTF-8 bytes, not by locale. */
function byUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** A fresh database ID: 40 random hex characters, as the reference's token_hex(20). */
export function newDbId(): string {
  return randomBytes(20).toString('hex');
}

function nowEpochSeconds(): number {
  return Date.now() / 1000;
}

/** SQLite gets a JS number as REAL; integers that must stay INTEGER are bound as bigint. */
function sqlInteger(n: number, what: string): bigint {
  if (!Number.isSafeInteger(n)) throw new RangeError(`${what} must be an integer, got ${n}`);
  return BigInt(n);
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/** The value a summary is stored as in run_variables.value. */
function storedSummary(summary: SummaryValue | null): bigint | number | string | Buffer | null {
  if (summary === null) return null;
  switch (summary.t) {
    case 'int': {
      const n = BigInt(summary.v);
      // SQLite integers are 64-bit; a Python int beyond that is kept as the nearest REAL.
      return n >= INT64_MIN && n <= INT64_MAX ? n : Number(n);
    }
    case 'float':
      if (typeof summary.v === 'number') return summary.v;
      // SQLite keeps infinities as REAL (as Python's sqlite3 writes them); NaN can only be NULL.
      return summary.v === 'nan' ? null : summary.v === 'inf' ? Infinity : -Infinity;
    case 'str':
      return summary.v;
    case 'bytes':
      return Buffer.from(summary.v, 'base64');
  }
}

/** The variable names the wide views show, as of one schema version of the database. */
interface ViewColumns {
  schemaVersion: number;
  names: Set<string>;
  /** The views hold as many variables as they can: a name beyond that never gets a column. */
  full: boolean;
}

class SqliteDamnitDb implements DamnitDb {
  readonly metameta: Metameta;
  private readonly statements;
  /** Kept while no process changes the schema (any view rebuild does), so a record reads no names. */
  private viewColumns: ViewColumns | undefined;

  constructor(
    readonly dir: DatabaseDir,
    readonly connection: Database.Database,
    readonly schema: SchemaState,
  ) {
    const conn = connection;
    this.metameta = new MetametaTable(conn);
    this.statements = {
      insertRun: conn.prepare(
        'INSERT INTO run_info (proposal, run, start_time, added_at) VALUES (?, ?, ?, ?) ' +
          'ON CONFLICT (proposal, run) DO NOTHING',
      ),
      // start_time may only be known after the run was first recorded.
      setStartTime: conn.prepare('UPDATE run_info SET start_time = ? WHERE proposal = ? AND run = ?'),
      upsertVariable: conn.prepare(
        'INSERT INTO variables (name, type, title, description, attributes) VALUES (?, NULL, ?, ?, NULL) ' +
          'ON CONFLICT (name) DO UPDATE SET type = NULL, title = excluded.title, ' +
          'description = excluded.description, attributes = NULL',
      ),
      tagsOfVariable: conn.prepare<[string], { id: number; name: string }>(
        'SELECT tags.id, tags.name FROM tags JOIN variable_tags ON tags.id = variable_tags.tag_id ' +
          'WHERE variable_tags.variable_name = ?',
      ),
      addTag: conn.prepare('INSERT OR IGNORE INTO tags (name) VALUES (?)'),
      tagId: conn.prepare<[string], { id: number }>('SELECT id FROM tags WHERE name = ?'),
      tagVariable: conn.prepare('INSERT OR IGNORE INTO variable_tags (variable_name, tag_id) VALUES (?, ?)'),
      untagVariable: conn.prepare('DELETE FROM variable_tags WHERE variable_name = ? AND tag_id = ?'),
      upsertResult: conn.prepare(
        'INSERT INTO run_variables (proposal, run, name, version, value, timestamp, max_diff, provenance, ' +
          'summary_type, summary_method, attributes) ' +
          'VALUES (@proposal, @run, @name, 1, @value, @timestamp, @max_diff, @provenance, ' +
          '@summary_type, @summary_method, @attributes) ' +
          'ON CONFLICT (proposal, run, name, version) DO UPDATE SET value = excluded.value, ' +
          'timestamp = excluded.timestamp, max_diff = excluded.max_diff, provenance = excluded.provenance, ' +
          'summary_type = excluded.summary_type, summary_method = excluded.summary_method, ' +
          'attributes = excluded.attributes',
      ),
      catalogueNames: conn.prepare<[], { name: string }>('SELECT name FROM variables ORDER BY rowid'),
      userVariables: conn.prepare<[], UserVariable>(
        'SELECT name, type, title, description, attributes FROM variables WHERE type IS NOT NULL ORDER BY rowid',
      ),
      addUserVariable: conn.prepare(
        'INSERT OR IGNORE INTO variables (name, type, title, description, attributes) ' +
          'VALUES (@name, @type, @title, @description, @attributes)',
      ),
      schemaVersion: conn.prepare<[], number>('PRAGMA schema_version').pluck(),
      viewColumns: conn.prepare<[], string>("SELECT name FROM pragma_table_info('max_diffs')").pluck(),
      recordedNames: conn.prepare<[], { name: string }>(
        'SELECT DISTINCT name FROM run_variables WHERE name IS NOT NULL ORDER BY name',
      ),
      runNumbers: conn.prepare<[bigint | null, bigint | null], { run: number }>(
        'SELECT DISTINCT run FROM run_info WHERE ? IS NULL OR proposal = ? ORDER BY run',
      ),
    };
  }

  private writeRun(proposal: number, run: number, startTime: number | null, addedAt: number): void {
    const p = sqlInteger(proposal, 'proposal');
    const r = sqlInteger(run, 'run');
    this.statements.insertRun.run(p, r, startTime, addedAt);
    if (startTime !== null) this.statements.setStartTime.run(startTime, p, r);
  }

  ensureRun(proposal: number, run: number, opts: { startTime?: number | null; addedAt?: number } = {}): void {
    this.connection
      .transaction(() => this.writeRun(proposal, run, opts.startTime ?? null, opts.addedAt ?? nowEpochSeconds()))
      .immediate();
  }

  ensureRuns(proposal: number, runs: readonly number[]): void {
    const addedAt = nowEpochSeconds();
    this.connection.transaction(() => runs.forEach((run) => this.writeRun(proposal, run, null, addedAt))).immediate();
  }

  private syncTags(variable: string, tags: readonly string[]): void {
    const s = this.statements;
    const current = new Map(s.tagsOfVariable.all(variable).map((t) => [t.name, t.id]));
    const wanted = new Set(tags);
    for (const tag of wanted) {
      if (current.has(tag)) continue;
      s.addTag.run(tag);
      const row = s.tagId.get(tag);
      if (row !== undefined) s.tagVariable.run(variable, row.id);
    }
    // The trigger deletes a tag once no variable carries it.
    for (const [tag, id] of current) {
      if (!wanted.has(tag)) s.untagVariable.run(variable, id);
    }
  }

  /**
   * The names the views show now: read from the `max_diffs` view's columns when another write
   * (of this process or another) has changed the schema since the last look, else remembered.
   */
  private shownNames(): ViewColumns {
    const schemaVersion = this.statements.schemaVersion.get() as number;
    if (this.viewColumns?.schemaVersion !== schemaVersion) {
      const columns = this.statements.viewColumns.all().slice(2); // after proposal, run
      this.viewColumns = { schemaVersion, names: new Set(columns), full: columns.length >= VIEW_MAX_VARIABLES };
    }
    return this.viewColumns;
  }

  /**
   * Rebuilds the views when `names` holds one they do not show yet; touches nothing otherwise.
   * The views show every name recorded or catalogued (each writer keeps them so), so the new
   * list is the catalogue and the names shown plus the new ones: no scan of run_variables,
   * except once the views are full, where which names fit depends on all of them.
   */
  private addToViews(names: Iterable<string>): void {
    const shown = this.shownNames();
    if (shown.full) return;
    const added = [...new Set(names)].filter((name) => !shown.names.has(name));
    if (added.length === 0) return;
    const catalogue = this.statements.catalogueNames.all().map((row) => row.name);
    const inCatalogue = new Set(catalogue);
    const others = [...new Set([...shown.names, ...added])].filter((name) => !inCatalogue.has(name)).sort(byUtf8);
    this.rebuildViews([...catalogue, ...others]);
  }

  private rebuildViews(names: string[]): void {
    this.connection.exec(buildViewsSql(names));
    this.viewColumns = undefined;
  }

  upsertVariables(vars: VariableInfo[]): void {
    const stored = vars.filter((v) => !v.transient);
    this.connection
      .transaction(() => {
        for (const v of stored) {
          this.statements.upsertVariable.run(v.name, v.title, v.description);
          this.syncTags(v.name, v.tags);
        }
        this.addToViews(stored.map((v) => v.name));
      })
      .immediate();
  }

  userVariables(): UserVariable[] {
    return this.statements.userVariables.all();
  }

  addUserVariables(vars: UserVariable[]): void {
    this.connection
      .transaction(() => {
        for (const v of vars) this.statements.addUserVariable.run(v);
        this.addToViews(vars.map((v) => v.name));
      })
      .immediate();
  }

  recordRunResults(proposal: number, run: number, results: RunResults): void {
    const timestamp = nowEpochSeconds();
    const p = sqlInteger(proposal, 'proposal');
    const r = sqlInteger(run, 'run');
    this.connection
      .transaction(() => {
        this.writeRun(proposal, run, results.startTime, timestamp);
        for (const result of results.variables) {
          // A failure keeps only its error: no summary metadata is left from an earlier success.
          const failed = result.value === null;
          const attributes = result.attributes ?? {};
          this.statements.upsertResult.run({
            proposal: p,
            run: r,
            name: result.name,
            value: storedSummary(result.value),
            timestamp,
            max_diff: failed ? null : result.max_diff,
            provenance: 'context.py',
            summary_type: failed ? null : result.summary_type,
            summary_method: failed ? null : (result.summary_method ?? ''),
            attributes: Object.keys(attributes).length > 0 ? pythonJsonDumps(attributes) : null,
          });
        }
        this.addToViews(results.variables.map((v) => v.name));
      })
      .immediate();
  }

  variableNames(): string[] {
    const names = this.statements.catalogueNames.all().map((row) => row.name);
    const seen = new Set(names);
    for (const { name } of this.statements.recordedNames.all()) {
      if (!seen.has(name)) names.push(name);
    }
    return names;
  }

  namesLeftOutOfViews(): string[] {
    return this.variableNames().slice(VIEW_MAX_VARIABLES);
  }

  runNumbers(proposal?: number): number[] {
    const p = proposal === undefined ? null : sqlInteger(proposal, 'proposal');
    return this.statements.runNumbers.all(p, p).map((row) => Number(row.run));
  }

  close(): void {
    this.connection.close();
  }
}

/** SQLite's file header says WAL (format numbers 2 at bytes 18 and 19). */
function isWalFile(file: string): boolean {
  const header = Buffer.alloc(20);
  const fd = openSync(file, 'r');
  try {
    return readSync(fd, header, 0, 20, 0) === 20 && header[18] === 2 && header[19] === 2;
  } finally {
    closeSync(fd);
  }
}

function openForReading(dir: DatabaseDir, opts: OpenOptions): DamnitDb {
  let conn: Database.Database;
  try {
    conn = openConnection(dir.databaseFile, { create: false, readonly: true, busyTimeoutMs: opts.busyTimeoutMs });
  } catch (err) {
    if (!isWalFile(dir.databaseFile)) throw err;
    throw new DatabaseFormatError(
      `cannot read ${dir.databaseFile}: an earlier version left it in WAL mode, which only those who may write ` +
        `its directory can open; the next command one of them runs that writes it (${programName()} migrate) switches it back`,
    );
  }
  try {
    checkFormatForReading(conn, dir.databaseFile);
    return new SqliteDamnitDb(dir, conn, { created: false, upgrade: null, journal: 'none' });
  } catch (err) {
    conn.close();
    throw err;
  }
}

export interface OpenOptions {
  /** Create runs.sqlite when it is missing. */
  create?: boolean;
  /**
   * For commands that only read: nothing is written (no upgrade, no db_id, no journal), so a
   * directory the user cannot write will do, as for DAMNIT's own readers.
   */
  readonly?: boolean;
  /** How long one statement waits for another process's lock (BUSY_TIMEOUT_MS by default). */
  busyTimeoutMs?: number;
}

/**
 * Opens the database of a database directory, upgrading an older format on the way.
 * Without `create`, a missing runs.sqlite is the usual "not a database directory" error.
 * A new database gets a db_id, format 4 and the reference's concurrent_jobs default.
 * Opening to write first checks that this user may write there (one line naming the path if
 * not) and takes the directory's sharing modes (sharing.ts).
 */
export function openDatabase(dir: DatabaseDir, opts: OpenOptions = {}): DamnitDb {
  const create = opts.create ?? false;
  if (!create) requireDatabaseDir(dir.root);
  rememberDatabaseFile(dir.databaseFile);
  if (opts.readonly) return openForReading(dir, opts);
  const modes = prepareToWrite(dir);
  const conn = openConnection(dir.databaseFile, { create, busyTimeoutMs: opts.busyTimeoutMs });
  try {
    const schema = prepareSchema(conn, dir.databaseFile, { create });
    shareOwnedPath(dir.databaseFile, 'file', modes);
    const db = new SqliteDamnitDb(dir, conn, schema);
    // Only take the write lock when there is something to write: most opens have a db_id.
    if (schema.created || db.metameta.get('db_id') == null) {
      conn
        .transaction(() => {
          if (db.metameta.get('db_id') == null) db.metameta.set('db_id', newDbId());
          if (schema.created) db.metameta.set('concurrent_jobs', CONFIG_DEFAULTS.concurrent_jobs);
        })
        .immediate();
    }
    return db;
  } catch (err) {
    conn.close();
    throw err;
  }
}

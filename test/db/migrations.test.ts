import assert from 'node:assert/strict';
import { copyFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, beforeEach, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { DatabaseDir } from '../../src/database-dir.js';
import { openDatabase } from '../../src/db/database.js';
import { DatabaseFormatError } from '../../src/db/migrations.js';
import { makeTempDir } from '../helpers/cli.js';
import { pythonJson } from '../helpers/python.js';
import { copyReferenceDb, dumpTable, inspect, variable } from './fixtures.js';

const DATA_TABLES = ['run_info', 'run_variables', 'variables', 'tags', 'variable_tags', 'time_comments'];

/** A format-1 database as DAMNIT wrote them before run_variables had attributes or tags existed. */
function writeFormat1Db(file: string): void {
  const conn = new Database(file);
  conn.exec(`
    CREATE TABLE run_info(proposal, run, start_time, added_at);
    CREATE UNIQUE INDEX proposal_run ON run_info (proposal, run);
    CREATE TABLE run_variables(proposal, run, name, version, value, timestamp, max_diff, provenance, summary_type, summary_method);
    CREATE UNIQUE INDEX variable_version ON run_variables (proposal, run, name, version);
    CREATE VIEW runs AS SELECT * FROM run_info;
    CREATE VIEW max_diffs AS SELECT proposal, run FROM run_info;
    CREATE TABLE metameta(key PRIMARY KEY NOT NULL, value);
    CREATE TABLE variables(name TEXT PRIMARY KEY NOT NULL, type TEXT, title TEXT, description TEXT, attributes TEXT);
    CREATE TABLE time_comments(timestamp, comment);
    INSERT INTO metameta VALUES ('data_format_version', 1), ('proposal', 900), ('db_id', 'abc123');
    INSERT INTO run_info VALUES (900, 5, 1700000000.5, 1700000100.25);
    INSERT INTO run_variables VALUES (900, 5, 'energy', 1, 9.5, 1700000200.0, NULL, 'context.py', NULL, 'mean');
    INSERT INTO variables VALUES ('energy', NULL, 'Energy', NULL, NULL);
    INSERT INTO time_comments VALUES (1700000300.0, 'beam down');
  `);
  conn.close();
}

function setFormatVersion(file: string, value: unknown): void {
  const conn = new Database(file);
  if (value === undefined) conn.prepare("DELETE FROM metameta WHERE key = 'data_format_version'").run();
  else conn.prepare("UPDATE metameta SET value = ? WHERE key = 'data_format_version'").run(value);
  conn.close();
}

describe('opening older and newer databases', () => {
  let tmp: ReturnType<typeof makeTempDir>;
  let dbDir: DatabaseDir;

  beforeEach(() => {
    tmp?.cleanup();
    tmp = makeTempDir();
    dbDir = new DatabaseDir(tmp.dir);
  });
  after(() => tmp.cleanup());

  it('upgrades a copy of the reference format-2 database to 4, keeping every row', () => {
    copyReferenceDb(tmp.dir);
    const before = inspect(dbDir.databaseFile, (conn) =>
      Object.fromEntries(DATA_TABLES.map((t) => [t, dumpTable(conn, t)])),
    );
    const metaBefore = inspect(dbDir.databaseFile, (conn) => dumpTable(conn, 'metameta'));
    assert.ok((before.run_variables as unknown[]).length >= 30);

    const db = openDatabase(dbDir);
    assert.deepEqual(
      db.schema.upgrade && { from: db.schema.upgrade.fromVersion, to: db.schema.upgrade.toVersion, steps: db.schema.upgrade.steps.map((s) => s.toVersion) },
      { from: 2, to: 4, steps: [3, 4] },
    );
    db.close();

    inspect(dbDir.databaseFile, (conn) => {
      for (const t of DATA_TABLES) assert.deepEqual(dumpTable(conn, t), before[t], t);
      const meta = dumpTable(conn, 'metameta') as { key: string; value: string; value_type: string }[];
      const expected = (metaBefore as { key: string; value: string; value_type: string }[]).map((row) =>
        row.key === "'data_format_version'" ? { ...row, value: '4' } : row,
      );
      assert.deepEqual(meta, expected);
      assert.ok(
        conn.prepare("SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = 'delete_orphan_tags_after_variable_tag_delete'").get(),
      );
      // The upgraded database's views still show the recorded values.
      const runs = conn.prepare('SELECT run, n_trains, label FROM runs ORDER BY run').all();
      assert.deepEqual(runs, [
        { run: 1, n_trains: 480, label: 'p1234 r1 FXE synthetic' },
        { run: 2, n_trains: 480, label: 'p1234 r2 FXE synthetic' },
        { run: 3, n_trains: 480, label: 'p1234 r3 FXE synthetic' },
      ]);
    });

    const again = openDatabase(dbDir);
    assert.equal(again.schema.upgrade, null);
    again.close();
  });

  it('upgrades a format-1 database through every step, then works as a format-4 one', () => {
    writeFormat1Db(dbDir.databaseFile);
    const db = openDatabase(dbDir);
    try {
      assert.deepEqual(db.schema.upgrade?.steps.map((s) => s.toVersion), [2, 3, 4]);
      assert.equal(db.metameta.get('data_format_version'), 4);
      assert.equal(db.metameta.get('db_id'), 'abc123');
      const cols = (db.connection.pragma('table_info(run_variables)') as { name: string }[]).map((c) => c.name);
      assert.equal(cols.at(-1), 'attributes');
      assert.deepEqual(
        db.connection.prepare('SELECT proposal, run, name, value, summary_method, attributes FROM run_variables').all(),
        [{ proposal: 900, run: 5, name: 'energy', value: 9.5, summary_method: 'mean', attributes: null }],
      );
      assert.deepEqual(db.connection.prepare('SELECT * FROM time_comments').all(), [
        { timestamp: 1700000300, comment: 'beam down' },
      ]);
      db.upsertVariables([variable('energy', { tags: ['beam'] })]);
      assert.deepEqual(db.connection.prepare('SELECT name FROM tags').pluck().all(), ['beam']);
    } finally {
      db.close();
    }
  });

  for (const [what, version, pattern] of [
    ['a newer format (99)', 99, /data format 99, newer than the 4/],
    ['format 5', 5, /data format 5, newer/],
    ['a non-integer format', 'abc', /data_format_version "abc" is not a format version/],
    ['a fractional format', 2.5, /data_format_version 2\.5 is not a format version/],
    ['the legacy format 0', 0, /legacy data format v0/],
    ['a database without data_format_version (legacy v0)', undefined, /legacy data format v0/],
  ] as const) {
    it(`refuses ${what}, naming the file, and leaves it unchanged`, () => {
      copyReferenceDb(tmp.dir);
      setFormatVersion(dbDir.databaseFile, version);
      const bytesBefore = readFileSync(dbDir.databaseFile);
      assert.throws(
        () => openDatabase(dbDir),
        (err: Error) => {
          assert.ok(err instanceof DatabaseFormatError);
          assert.ok(err.message.includes(dbDir.databaseFile), err.message);
          assert.match(err.message, pattern);
          return true;
        },
      );
      assert.deepEqual(readFileSync(dbDir.databaseFile), bytesBefore);
    });
  }

  it('accepts a format version stored as decimal text, as the reference does', () => {
    copyReferenceDb(tmp.dir);
    setFormatVersion(dbDir.databaseFile, '3');
    const db = openDatabase(dbDir);
    assert.deepEqual(db.schema.upgrade?.steps.map((s) => s.toVersion), [4]);
    assert.equal(db.metameta.get('data_format_version'), 4);
    db.close();
  });

  it('refuses a file that is not a SQLite database, naming it', () => {
    writeFileSync(dbDir.databaseFile, 'this is not a database, just text that is long enough to have a header\n'.repeat(10));
    assert.throws(() => openDatabase(dbDir), (err: Error) => {
      assert.ok(err.message.includes(dbDir.databaseFile), err.message);
      assert.match(err.message, /not a database/);
      return true;
    });
  });

  it('refuses a SQLite database of something else', () => {
    const conn = new Database(dbDir.databaseFile);
    conn.exec('CREATE TABLE shopping(item)');
    conn.close();
    assert.throws(() => openDatabase(dbDir), /is not a DAMNIT database \(it has no metameta table\)/);
  });

  it('without create, a missing database is the "not a database directory" error', () => {
    assert.throws(() => openDatabase(dbDir), /no runs\.sqlite in .*amore-proto proposal <number>/);
  });

  it('a database an earlier version left in WAL, copied with a -wal file of committed rows: switched to the rollback journal, nothing lost', async () => {
    const source = makeTempDir();
    try {
      const sourceDir = new DatabaseDir(source.dir);
      openDatabase(sourceDir, { create: true }).close();
      // As an earlier version of ours wrote it: WAL, the newest rows only in the -wal file.
      const writer = new Database(sourceDir.databaseFile);
      writer.pragma('journal_mode = WAL');
      writer.pragma('wal_autocheckpoint = 0');
      writer.exec("INSERT INTO run_info VALUES (1234, 7, 1700000000.5, 1700000100.25); INSERT INTO metameta VALUES ('note', 'in the wal')");
      copyFileSync(sourceDir.databaseFile, dbDir.databaseFile);
      copyFileSync(`${sourceDir.databaseFile}-wal`, `${dbDir.databaseFile}-wal`);
      writer.close();
    } finally {
      source.cleanup();
    }
    // The rows really are in the -wal file alone: the main file without it does not have them.
    const mainOnly = makeTempDir();
    copyFileSync(dbDir.databaseFile, path.join(mainOnly.dir, 'runs.sqlite'));
    assert.equal(inspect(path.join(mainOnly.dir, 'runs.sqlite'), (conn) => dumpTable(conn, 'run_info')).length, 0);
    mainOnly.cleanup();

    const db = openDatabase(dbDir);
    assert.equal(db.connection.pragma('journal_mode', { simple: true }), 'delete');
    assert.equal(db.metameta.get('note'), 'in the wal');
    db.close();
    assert.equal(existsSync(`${dbDir.databaseFile}-wal`), false);
    // DAMNIT's readers (Python's sqlite3, read-only) see every row in the main file.
    const seen = await pythonJson<{ mode: string; runs: number[][] }>(String.raw`
import json, sqlite3, sys
conn = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
print(json.dumps({"mode": conn.execute("PRAGMA journal_mode").fetchone()[0],
                  "runs": conn.execute("SELECT proposal, run FROM run_info").fetchall()}))
`, [dbDir.databaseFile]);
    assert.deepEqual(seen, { mode: 'delete', runs: [[1234, 7]] });
  });

  it('a read-only open writes nothing, and leaves upgrades to a writer', () => {
    writeFormat1Db(dbDir.databaseFile);
    const before = readFileSync(dbDir.databaseFile);
    assert.throws(() => openDatabase(dbDir, { readonly: true }), /at data format 1; a command that writes \(amore-proto migrate\) upgrades it/);
    openDatabase(dbDir).close();
    setFormatVersion(dbDir.databaseFile, 4);
    const current = readFileSync(dbDir.databaseFile);
    const reader = openDatabase(dbDir, { readonly: true });
    assert.equal(reader.metameta.get('proposal'), 900);
    assert.throws(() => reader.metameta.set('proposal', 1), /readonly/);
    reader.close();
    assert.ok(readFileSync(dbDir.databaseFile).equals(current));
    assert.ok(!before.equals(current));
    assert.deepEqual(readdirSync(tmp.dir).sort(), ['runs.sqlite']);
  });
});

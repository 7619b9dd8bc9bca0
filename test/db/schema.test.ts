import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type Database from 'better-sqlite3';
import { DatabaseDir } from '../../src/database-dir.js';
import { openDatabase, type DamnitDb } from '../../src/db/database.js';
import { makeTempDir } from '../helpers/cli.js';
import { REFERENCE_FORMAT2_DB, inspect, result, variable } from './fixtures.js';

interface Column {
  name: string;
  type: string;
  notnull: number;
  pk: number;
}

function columns(conn: Database.Database, table: string): Column[] {
  return (conn.pragma(`table_info(${table})`) as Column[]).map(({ name, type, notnull, pk }) => ({
    name,
    type,
    notnull,
    pk,
  }));
}

const untyped = (...names: string[]): Column[] => names.map((name) => ({ name, type: '', notnull: 0, pk: 0 }));

/** Contract section 3, written out column by column. */
const CONTRACT_TABLES: Record<string, Column[]> = {
  run_info: untyped('proposal', 'run', 'start_time', 'added_at'),
  run_variables: untyped(
    'proposal', 'run', 'name', 'version', 'value', 'timestamp', 'max_diff',
    'provenance', 'summary_type', 'summary_method', 'attributes',
  ),
  metameta: [
    { name: 'key', type: '', notnull: 1, pk: 1 },
    { name: 'value', type: '', notnull: 0, pk: 0 },
  ],
  variables: [
    { name: 'name', type: 'TEXT', notnull: 1, pk: 1 },
    { name: 'type', type: 'TEXT', notnull: 0, pk: 0 },
    { name: 'title', type: 'TEXT', notnull: 0, pk: 0 },
    { name: 'description', type: 'TEXT', notnull: 0, pk: 0 },
    { name: 'attributes', type: 'TEXT', notnull: 0, pk: 0 },
  ],
  time_comments: untyped('timestamp', 'comment'),
  tags: [
    { name: 'id', type: 'INTEGER', notnull: 0, pk: 1 },
    { name: 'name', type: 'TEXT', notnull: 1, pk: 0 },
  ],
  variable_tags: [
    { name: 'variable_name', type: 'TEXT', notnull: 1, pk: 1 },
    { name: 'tag_id', type: 'INTEGER', notnull: 1, pk: 2 },
  ],
};

function uniqueIndexColumns(conn: Database.Database, table: string): string[][] {
  const indexes = conn.pragma(`index_list(${table})`) as { name: string; unique: number }[];
  return indexes
    .filter((i) => i.unique === 1)
    .map((i) => (conn.pragma(`index_info(${i.name})`) as { name: string }[]).map((c) => c.name))
    .sort();
}

describe('schema of a new database (format 4)', () => {
  let tmp: ReturnType<typeof makeTempDir>;
  let dbDir: DatabaseDir;

  before(() => {
    tmp = makeTempDir();
    dbDir = new DatabaseDir(tmp.dir);
    openDatabase(dbDir, { create: true }).close();
  });
  after(() => tmp.cleanup());

  it('has exactly the contract tables, column for column', () => {
    inspect(dbDir.databaseFile, (conn) => {
      const tables = (
        conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]
      ).map((t) => t.name);
      const ours = tables.filter((t) => t !== 'sqlite_sequence' && !t.startsWith('damnit_ts_'));
      assert.deepEqual(ours, Object.keys(CONTRACT_TABLES).sort());
      for (const [table, expected] of Object.entries(CONTRACT_TABLES)) {
        assert.deepEqual(columns(conn, table), expected, table);
      }
    });
  });

  it('matches the columns of the database the reference wrote', () => {
    const reference = inspect(REFERENCE_FORMAT2_DB, (conn) =>
      Object.fromEntries(Object.keys(CONTRACT_TABLES).map((t) => [t, columns(conn, t)])),
    );
    const ours = inspect(dbDir.databaseFile, (conn) =>
      Object.fromEntries(Object.keys(CONTRACT_TABLES).map((t) => [t, columns(conn, t)])),
    );
    assert.deepEqual(ours, reference);
  });

  it('has the unique indexes: (proposal, run), (proposal, run, name, version), tag names', () => {
    inspect(dbDir.databaseFile, (conn) => {
      assert.deepEqual(uniqueIndexColumns(conn, 'run_info'), [['proposal', 'run']]);
      assert.deepEqual(uniqueIndexColumns(conn, 'run_variables'), [['proposal', 'run', 'name', 'version']]);
      assert.deepEqual(uniqueIndexColumns(conn, 'tags'), [['name']]);
      const named = conn
        .prepare("SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name")
        .all();
      assert.deepEqual(named, [
        { name: 'proposal_run', tbl_name: 'run_info' },
        { name: 'variable_version', tbl_name: 'run_variables' },
      ]);
    });
  });

  it('has variable_tags foreign keys with ON DELETE CASCADE', () => {
    inspect(dbDir.databaseFile, (conn) => {
      const fks = (
        conn.pragma('foreign_key_list(variable_tags)') as { table: string; from: string; to: string; on_delete: string }[]
      )
        .map(({ table, from, to, on_delete }) => ({ table, from, to, on_delete }))
        .sort((a, b) => a.from.localeCompare(b.from));
      assert.deepEqual(fks, [
        { table: 'tags', from: 'tag_id', to: 'id', on_delete: 'CASCADE' },
        { table: 'variables', from: 'variable_name', to: 'name', on_delete: 'CASCADE' },
      ]);
    });
  });

  it('has the orphan-tag trigger on variable_tags and the two views', () => {
    inspect(dbDir.databaseFile, (conn) => {
      const others = conn
        .prepare("SELECT type, name, tbl_name FROM sqlite_master WHERE type IN ('trigger', 'view') ORDER BY type, name")
        .all();
      assert.deepEqual(others, [
        { type: 'trigger', name: 'delete_orphan_tags_after_variable_tag_delete', tbl_name: 'variable_tags' },
        { type: 'view', name: 'max_diffs', tbl_name: 'max_diffs' },
        { type: 'view', name: 'runs', tbl_name: 'runs' },
      ]);
    });
  });

  it('records format 4, a 40-hex db_id and concurrent_jobs 15, as integers where numbers', () => {
    inspect(dbDir.databaseFile, (conn) => {
      const rows = conn.prepare('SELECT key, value, typeof(value) AS t FROM metameta ORDER BY key').all() as {
        key: string;
        value: unknown;
        t: string;
      }[];
      const byKey = Object.fromEntries(rows.map((r) => [r.key, r]));
      assert.deepEqual(byKey.data_format_version, { key: 'data_format_version', value: 4, t: 'integer' });
      assert.deepEqual(byKey.concurrent_jobs, { key: 'concurrent_jobs', value: 15, t: 'integer' });
      assert.match(String(byKey.db_id?.value), /^[0-9a-f]{40}$/);
    });
  });

  it("uses SQLite's rollback journal, as the reference, and enforces foreign keys on its connection", () => {
    const db = openDatabase(dbDir);
    try {
      assert.equal(db.connection.pragma('journal_mode', { simple: true }), 'delete');
      assert.equal(db.connection.pragma('foreign_keys', { simple: true }), 1);
      assert.ok(Number(db.connection.pragma('busy_timeout', { simple: true })) >= 5000);
      assert.throws(
        () => db.connection.prepare('INSERT INTO variable_tags VALUES (?, ?)').run('no_such_variable', 12345),
        /FOREIGN KEY/,
      );
    } finally {
      db.close();
    }
  });
});

describe('trigger and views at work', () => {
  let tmp: ReturnType<typeof makeTempDir>;
  let db: DamnitDb;

  before(() => {
    tmp = makeTempDir();
    db = openDatabase(new DatabaseDir(tmp.dir), { create: true });
  });
  after(() => {
    db.close();
    tmp.cleanup();
  });

  const tagNames = (): string[] =>
    (db.connection.prepare('SELECT name FROM tags ORDER BY id').all() as { name: string }[]).map((r) => r.name);

  it('deletes a tag with its last variable_tags row, and only then', () => {
    db.upsertVariables([variable('a', { tags: ['xgm', 'shared'] }), variable('b', { tags: ['shared'] })]);
    assert.deepEqual(tagNames(), ['xgm', 'shared']);
    db.connection.prepare("DELETE FROM variable_tags WHERE variable_name = 'a'").run();
    assert.deepEqual(tagNames(), ['shared']);
    db.connection.prepare("DELETE FROM variable_tags WHERE variable_name = 'b'").run();
    assert.deepEqual(tagNames(), []);
  });

  it('cascades deleting a variable to its variable_tags rows', () => {
    db.upsertVariables([variable('c', { tags: ['gone'] })]);
    db.connection.prepare("DELETE FROM variables WHERE name = 'c'").run();
    assert.equal(db.connection.prepare("SELECT count(*) AS n FROM variable_tags WHERE variable_name = 'c'").pluck().get(), 0);
    assert.deepEqual(tagNames().includes('gone'), false);
  });

  it('orders the variable columns as the context defines them, then other recorded names by name', () => {
    // Deliberately stable (docs/context-file.md): the reference orders them by a Python set.
    const own = makeTempDir();
    const fresh = openDatabase(new DatabaseDir(own.dir), { create: true });
    try {
      const viewColumns = (view: string): string[] =>
        (fresh.connection.pragma(`table_info(${view})`) as { name: string }[]).map((c) => c.name);
      fresh.upsertVariables([variable('zeta'), variable('alpha'), variable('mid')]);
      fresh.recordRunResults(1234, 1, {
        startTime: 1795488776.5,
        variables: [result('comment', { t: 'str', v: 'hi' }), result('beta', { t: 'int', v: '1' }), result('zeta', { t: 'int', v: '2' })],
      });
      assert.deepEqual(viewColumns('runs'), ['proposal', 'run', 'start_time', 'added_at', 'zeta', 'alpha', 'mid', 'beta', 'comment']);
      assert.deepEqual(viewColumns('max_diffs'), ['proposal', 'run', 'zeta', 'alpha', 'mid', 'beta', 'comment']);
    } finally {
      fresh.close();
      own.cleanup();
    }
  });

  it('lists each new variable as a column of runs and max_diffs', () => {
    const viewColumns = (view: string): string[] =>
      (db.connection.pragma(`table_info(${view})`) as { name: string }[]).map((c) => c.name);
    db.upsertVariables([variable('n_trains'), variable('xgm_mean')]);
    assert.deepEqual(viewColumns('runs').slice(0, 4), ['proposal', 'run', 'start_time', 'added_at']);
    assert.ok(viewColumns('runs').includes('n_trains'));
    assert.ok(viewColumns('max_diffs').includes('xgm_mean'));

    db.recordRunResults(1234, 7, {
      startTime: 1795488776.5,
      variables: [
        result('n_trains', { t: 'int', v: '480' }),
        result('xgm_mean', { t: 'float', v: 0.5 }, { max_diff: 4.79 }),
        result("odd 'name\"", { t: 'str', v: 'quoted' }),
      ],
    });
    assert.ok(viewColumns('runs').includes("odd 'name\""));
    const row = db.connection.prepare('SELECT * FROM runs WHERE run = 7').get() as Record<string, unknown>;
    assert.equal(row.n_trains, 480);
    assert.equal(row.xgm_mean, 0.5);
    assert.equal(row.start_time, 1795488776.5);
    assert.equal(row["odd 'name\""], 'quoted');
    const diffs = db.connection.prepare('SELECT * FROM max_diffs WHERE run = 7').get() as Record<string, unknown>;
    assert.equal(diffs.xgm_mean, 4.79);
    assert.equal(diffs.n_trains, null);
  });
});

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { DatabaseDir } from '../../src/database-dir.js';
import { newDbId, openDatabase, type DamnitDb } from '../../src/db/database.js';
import { VIEW_MAX_VARIABLES } from '../../src/db/schema.js';
import { makeTempDir } from '../helpers/cli.js';
import { TEST_PYTHON } from '../helpers/paths.js';
import { failure, result, variable } from './fixtures.js';

function openFresh(): { db: DamnitDb; cleanup: () => void } {
  const tmp = makeTempDir();
  const db = openDatabase(new DatabaseDir(tmp.dir), { create: true });
  return {
    db,
    cleanup: () => {
      db.close();
      tmp.cleanup();
    },
  };
}

interface StoredRow {
  value: unknown;
  vtype: string;
  version: number;
  timestamp: number;
  max_diff: number | null;
  provenance: string | null;
  summary_type: string | null;
  summary_method: string | null;
  attributes: string | null;
}

function stored(db: DamnitDb, proposal: number, run: number, name: string): StoredRow | undefined {
  return db.connection
    .prepare(
      'SELECT value, typeof(value) AS vtype, version, timestamp, max_diff, provenance, summary_type, ' +
        'summary_method, attributes FROM run_variables WHERE proposal = ? AND run = ? AND name = ?',
    )
    .safeIntegers(false)
    .get(proposal, run, name) as StoredRow | undefined;
}

describe('newDbId', () => {
  it('gives 40 random hex characters', () => {
    const ids = new Set(Array.from({ length: 50 }, newDbId));
    assert.equal(ids.size, 50);
    for (const id of ids) assert.match(id, /^[0-9a-f]{40}$/);
  });
});

describe('metameta', () => {
  let fresh: ReturnType<typeof openFresh>;
  before(() => {
    fresh = openFresh();
  });
  after(() => fresh.cleanup());

  it('keeps the SQLite type of each value', () => {
    const { db } = fresh;
    db.metameta.set('an_int', 15);
    db.metameta.set('a_float', 2.5);
    db.metameta.set('a_string', '02:00:00');
    db.metameta.set('a_big_int', 2n ** 60n);
    const types = Object.fromEntries(
      (db.connection.prepare('SELECT key, typeof(value) AS t FROM metameta').all() as { key: string; t: string }[]).map(
        (r) => [r.key, r.t],
      ),
    );
    assert.equal(types.an_int, 'integer');
    assert.equal(types.a_float, 'real');
    assert.equal(types.a_string, 'text');
    assert.equal(types.a_big_int, 'integer');
    assert.equal(db.metameta.get('an_int'), 15);
    assert.equal(db.metameta.get('a_float'), 2.5);
    assert.equal(db.metameta.get('a_string'), '02:00:00');
    assert.equal(db.metameta.get('a_big_int'), 2n ** 60n);
    assert.deepEqual(db.metameta.getTyped('a_float'), { value: 2.5, storage: 'real' });
    assert.equal(db.metameta.get('missing'), undefined);
  });

  it('overwrites, lists and deletes', () => {
    const { db } = fresh;
    db.metameta.set('slurm_partition', 'allgpu');
    db.metameta.set('slurm_partition', 'upex');
    assert.equal(db.metameta.get('slurm_partition'), 'upex');
    const entries = new Map(db.metameta.entries());
    assert.equal(entries.get('slurm_partition'), 'upex');
    assert.equal(entries.get('data_format_version'), 4);
    assert.equal(db.metameta.delete('slurm_partition'), true);
    assert.equal(db.metameta.delete('slurm_partition'), false);
    assert.equal(db.metameta.get('slurm_partition'), undefined);
  });

  it('refuses values that cannot be stored as numbers', () => {
    assert.throws(() => fresh.db.metameta.set('x', Number.NaN), RangeError);
  });
});

describe('runs', () => {
  let fresh: ReturnType<typeof openFresh>;
  before(() => {
    fresh = openFresh();
  });
  after(() => fresh.cleanup());

  it('ensureRun adds a run once and fills start_time when it becomes known', () => {
    const { db } = fresh;
    db.ensureRun(1234, 5, { addedAt: 1700000000.25 });
    db.ensureRun(1234, 5, { addedAt: 1800000000 });
    let row = db.connection.prepare('SELECT * FROM run_info WHERE run = 5').get();
    assert.deepEqual(row, { proposal: 1234, run: 5, start_time: null, added_at: 1700000000.25 });
    db.ensureRun(1234, 5, { startTime: 1699999999.5 });
    row = db.connection
      .prepare('SELECT proposal, typeof(proposal) AS pt, run, typeof(run) AS rt, start_time, added_at FROM run_info WHERE run = 5')
      .get();
    assert.deepEqual(row, { proposal: 1234, pt: 'integer', run: 5, rt: 'integer', start_time: 1699999999.5, added_at: 1700000000.25 });
  });

  it('runNumbers lists runs sorted, for one proposal or all', () => {
    const { db } = fresh;
    for (const run of [30, 2, 100]) db.ensureRun(1234, run);
    db.ensureRun(999, 1);
    assert.deepEqual(db.runNumbers(1234), [2, 5, 30, 100]);
    assert.deepEqual(db.runNumbers(999), [1]);
    assert.deepEqual(db.runNumbers(), [1, 2, 5, 30, 100]);
    assert.deepEqual(db.runNumbers(42), []);
  });

  it('ensureRuns records new runs in the order given, added_at in epoch seconds as the reference', () => {
    const { db } = fresh;
    const before = Date.now() / 1000;
    db.ensureRuns(1234, [40, 41, 5, 42]);
    const after = Date.now() / 1000;
    const rows = db.connection
      .prepare('SELECT run, added_at FROM run_info WHERE run BETWEEN 40 AND 42 ORDER BY rowid')
      .all() as { run: number; added_at: number }[];
    assert.deepEqual(rows.map((r) => r.run), [40, 41, 42]);
    for (const { added_at } of rows) assert.ok(added_at >= before && added_at <= after, `${added_at} in seconds`);
  });

  it('refuses run numbers that are not integers', () => {
    assert.throws(() => fresh.db.ensureRun(1234, 1.5), /run must be an integer/);
  });
});

describe('upsertVariables', () => {
  let fresh: ReturnType<typeof openFresh>;
  before(() => {
    fresh = openFresh();
  });
  after(() => fresh.cleanup());

  const rows = (db: DamnitDb): unknown[] =>
    db.connection.prepare('SELECT name, type, title, description, attributes FROM variables ORDER BY name').all();
  const tagsOf = (db: DamnitDb, name: string): string[] =>
    (
      db.connection
        .prepare('SELECT t.name FROM tags t JOIN variable_tags vt ON t.id = vt.tag_id WHERE vt.variable_name = ? ORDER BY t.name')
        .all(name) as { name: string }[]
    ).map((r) => r.name);

  it('writes one row per non-transient variable, with type NULL', () => {
    const { db } = fresh;
    db.upsertVariables([
      variable('pulse_energy', { title: 'Pulse energy', description: 'Per-train XGM sum', tags: ['xgm', 'per-train'] }),
      variable('xgm_mean', { title: 'XGM mean', tags: ['xgm'] }),
      variable('scratch', { transient: true }),
    ]);
    assert.deepEqual(rows(db), [
      { name: 'pulse_energy', type: null, title: 'Pulse energy', description: 'Per-train XGM sum', attributes: null },
      { name: 'xgm_mean', type: null, title: 'XGM mean', description: null, attributes: null },
    ]);
    assert.deepEqual(tagsOf(db, 'pulse_energy'), ['per-train', 'xgm']);
    assert.deepEqual(db.connection.prepare('SELECT id, name FROM tags ORDER BY id').all(), [
      { id: 1, name: 'xgm' },
      { id: 2, name: 'per-train' },
    ]);
  });

  it('updates titles and tags, keeps rows of variables that left the context, drops unused tags', () => {
    const { db } = fresh;
    db.upsertVariables([variable('pulse_energy', { title: 'Pulse energy (mJ)', description: null, tags: ['xgm'] })]);
    assert.deepEqual(rows(db), [
      { name: 'pulse_energy', type: null, title: 'Pulse energy (mJ)', description: null, attributes: null },
      { name: 'xgm_mean', type: null, title: 'XGM mean', description: null, attributes: null },
    ]);
    assert.deepEqual(tagsOf(db, 'pulse_energy'), ['xgm']);
    assert.deepEqual(db.connection.prepare('SELECT name FROM tags ORDER BY id').pluck().all(), ['xgm']);
  });

  it('rebuilds the views only when a new name appears', () => {
    const { db } = fresh;
    const viewSql = (): string =>
      db.connection.prepare("SELECT sql FROM sqlite_master WHERE name = 'runs'").pluck().get() as string;
    const before = viewSql();
    assert.match(before, /pulse_energy/);
    db.upsertVariables([variable('xgm_mean', { title: 'XGM mean' })]);
    assert.equal(viewSql(), before);
    db.upsertVariables([variable('beam_x')]);
    assert.match(viewSql(), /beam_x/);
  });

  it('changes nothing when one write of the batch fails', () => {
    const { db } = fresh;
    const before = rows(db);
    const broken = { ...variable('new_one'), title: undefined as unknown as string, tags: 5 as unknown as string[] };
    assert.throws(() => db.upsertVariables([variable('another'), broken]));
    assert.deepEqual(rows(db), before);
  });
});

// Issue 15: more variables than SQLite allows columns in a view (2000) no longer break the views.
describe('a context with more variables than the views can hold', () => {
  it('builds the views from the first ones, keeps every value, and names those left out', () => {
    const { db, cleanup } = openFresh();
    try {
      const names = Array.from({ length: 3000 }, (_, i) => `v${String(i).padStart(4, '0')}`);
      db.upsertVariables(names.map((name) => variable(name)));
      db.recordRunResults(1234, 1, {
        startTime: 1795488776,
        variables: names.map((name, i) => result(name, { t: 'int', v: String(i) })),
      });
      assert.equal(VIEW_MAX_VARIABLES, 1996);
      const row = db.connection.prepare('SELECT * FROM runs').get() as Record<string, unknown>;
      assert.equal(Object.keys(row).length, 2000);
      assert.equal(row.v1995, 1995);
      assert.equal('v1996' in row, false);
      const diffs = db.connection.prepare('SELECT * FROM max_diffs').get() as Record<string, unknown>;
      assert.equal(Object.keys(diffs).length, 1998);
      assert.deepEqual(db.namesLeftOutOfViews(), names.slice(1996));
      const stored = db.connection.prepare('SELECT count(*) FROM run_variables').pluck().get();
      assert.equal(stored, 3000);
    } finally {
      cleanup();
    }
  });
});

// Issue 14: recording touches only what changed; the views are rebuilt only for a new name.
describe('recording without rebuilding the views', () => {
  it('leaves the schema alone while every name is known, also to another connection, and adds a new name once', () => {
    const { db, cleanup } = openFresh();
    const other = openDatabase(db.dir);
    try {
      const schemaVersion = (conn: DamnitDb): number =>
        conn.connection.prepare('PRAGMA schema_version').pluck().get() as number;
      const viewSql = (): string =>
        db.connection.prepare("SELECT sql FROM sqlite_master WHERE name = 'runs'").pluck().get() as string;
      db.upsertVariables([variable('energy'), variable('position')]);
      db.recordRunResults(1234, 1, { startTime: 1, variables: [result('energy', { t: 'float', v: 1.5 })] });
      const known = schemaVersion(db);
      for (let run = 2; run <= 5; run++) {
        db.recordRunResults(1234, run, {
          startTime: run,
          variables: [result('energy', { t: 'float', v: run }), result('position', { t: 'int', v: String(run) })],
        });
      }
      db.upsertVariables([variable('energy', { title: 'Energy (mJ)' })]);
      other.recordRunResults(1234, 6, { startTime: 6, variables: [result('position', { t: 'int', v: '6' })] });
      assert.equal(schemaVersion(db), known);

      // A name no view shows yet: one rebuild, seen by the other connection too.
      other.recordRunResults(1234, 7, { startTime: 7, variables: [result('uncatalogued', { t: 'int', v: '7' })] });
      const added = schemaVersion(db);
      assert.ok(added > known);
      assert.match(viewSql(), /"uncatalogued"/);
      db.recordRunResults(1234, 8, { startTime: 8, variables: [result('uncatalogued', { t: 'int', v: '8' })] });
      assert.equal(schemaVersion(db), added);
      const row = db.connection.prepare('SELECT energy, position, uncatalogued FROM runs WHERE run = 8').get();
      assert.deepEqual(row, { energy: null, position: null, uncatalogued: 8 });
      assert.deepEqual(db.variableNames(), ['energy', 'position', 'uncatalogued']);
    } finally {
      other.close();
      cleanup();
    }
  });
});

describe('recordRunResults', () => {
  let fresh: ReturnType<typeof openFresh>;
  before(() => {
    fresh = openFresh();
  });
  after(() => fresh.cleanup());

  const png = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex');

  it('stores each kind of summary with its SQLite type', () => {
    const { db } = fresh;
    const t0 = Date.now() / 1000;
    db.recordRunResults(1234, 1, {
      startTime: 1795488776.61178,
      variables: [
        result('n_trains', { t: 'int', v: '480' }),
        result('huge', { t: 'int', v: '9007199254740993' }),
        result('xgm_mean', { t: 'float', v: 0.5 }),
        result('xgm_doubled', { t: 'float', v: 1 }),
        result('not_a_number', { t: 'float', v: 'nan' }),
        result('infinite', { t: 'float', v: '-inf' }),
        result('label', { t: 'str', v: 'p1234 r1 FXE synthetic' }),
        result('camera_image', { t: 'bytes', v: png.toString('base64') }, { max_diff: 1 }),
        result('pulse_energy', { t: 'float', v: 3.395 }, { summary_method: 'mean', max_diff: 4.79 }),
        result('energy_cell', { t: 'float', v: 1.25 }, {
          summary_method: 'std',
          attributes: { background: [255, 204, 0], bold: true },
        }),
        result('no_method', { t: 'str', v: 'x' }, { summary_method: null }),
      ],
    });
    const t1 = Date.now() / 1000;

    const typeOf = (name: string): [unknown, string] => {
      const row = stored(db, 1234, 1, name);
      assert.ok(row, name);
      return [row.value, row.vtype];
    };
    assert.deepEqual(typeOf('n_trains'), [480, 'integer']);
    assert.equal(
      db.connection.prepare("SELECT value FROM run_variables WHERE name = 'huge'").safeIntegers(true).pluck().get(),
      9007199254740993n,
    );
    assert.deepEqual(typeOf('xgm_mean'), [0.5, 'real']);
    assert.deepEqual(typeOf('xgm_doubled'), [1, 'real']);
    assert.deepEqual(typeOf('not_a_number'), [null, 'null']);
    assert.deepEqual(typeOf('infinite'), [-Infinity, 'real']);
    assert.deepEqual(typeOf('label'), ['p1234 r1 FXE synthetic', 'text']);
    assert.deepEqual(typeOf('camera_image'), [png, 'blob']);

    const pulse = stored(db, 1234, 1, 'pulse_energy');
    assert.ok(pulse);
    assert.equal(pulse.version, 1);
    assert.equal(pulse.provenance, 'context.py');
    assert.equal(pulse.summary_method, 'mean');
    assert.equal(pulse.max_diff, 4.79);
    assert.equal(pulse.attributes, null);
    assert.ok(pulse.timestamp >= t0 - 1 && pulse.timestamp <= t1 + 1);
    // Python's json.dumps spacing, as the reference writes it.
    assert.equal(stored(db, 1234, 1, 'energy_cell')?.attributes, '{"background": [255, 204, 0], "bold": true}');
    assert.equal(stored(db, 1234, 1, 'no_method')?.summary_method, '');

    assert.deepEqual(db.connection.prepare('SELECT start_time FROM run_info WHERE run = 1').pluck().all(), [1795488776.61178]);
    assert.equal(
      db.connection.prepare("SELECT count(*) FROM run_variables WHERE name = 'start_time'").pluck().get(),
      0,
    );
  });

  it('records an error with a NULL value and the error as attributes', () => {
    const { db } = fresh;
    db.recordRunResults(1234, 1, {
      startTime: null,
      variables: [failure('broken', 'intentional failure for testing', 'ValueError')],
    });
    const row = stored(db, 1234, 1, 'broken');
    assert.ok(row);
    assert.equal(row.vtype, 'null');
    assert.equal(row.attributes, '{"error": "intentional failure for testing", "error_cls": "ValueError"}');
    assert.equal(row.summary_method, null);
    assert.equal(row.max_diff, null);
    // A null start time leaves the known one alone.
    assert.equal(db.connection.prepare('SELECT start_time FROM run_info WHERE run = 1').pluck().get(), 1795488776.61178);
  });

  it('replaces the old value, summary and error of a variable with the new result', () => {
    const { db } = fresh;
    db.recordRunResults(1234, 1, {
      startTime: null,
      variables: [result('broken', { t: 'float', v: 2.5 }, { summary_method: 'max', max_diff: 0.5 })],
    });
    let row = stored(db, 1234, 1, 'broken');
    assert.deepEqual([row?.value, row?.summary_method, row?.max_diff, row?.attributes], [2.5, 'max', 0.5, null]);

    db.recordRunResults(1234, 1, { startTime: null, variables: [failure('broken', 'second failure', 'KeyError')] });
    row = stored(db, 1234, 1, 'broken');
    assert.deepEqual([row?.value, row?.summary_method, row?.max_diff, row?.summary_type], [null, null, null, null]);
    assert.equal(row?.attributes, '{"error": "second failure", "error_cls": "KeyError"}');
    assert.equal(
      db.connection.prepare("SELECT count(*) FROM run_variables WHERE run = 1 AND name = 'broken'").pluck().get(),
      1,
    );
  });

  it('shows new names in the runs view, one row per run', () => {
    const { db } = fresh;
    db.recordRunResults(1234, 2, { startTime: 1795488777.0, variables: [result('fresh_name', { t: 'int', v: '7' })] });
    const runs = db.connection.prepare('SELECT run, n_trains, fresh_name FROM runs ORDER BY run').all();
    assert.deepEqual(runs, [
      { run: 1, n_trains: 480, fresh_name: null },
      { run: 2, n_trains: null, fresh_name: 7 },
    ]);
  });

  it('writes all results of a run or none', () => {
    const { db } = fresh;
    // Messages are validated before they get here; this one slips past to fail mid-write.
    const bad = result('later', { t: 'int', v: 'not digits' });
    assert.throws(() =>
      db.recordRunResults(1234, 3, { startTime: 1.5, variables: [result('first', { t: 'int', v: '1' }), bad] }),
    );
    assert.deepEqual(db.runNumbers(1234), [1, 2]);
    assert.equal(db.connection.prepare("SELECT count(*) FROM run_variables WHERE name = 'first'").pluck().get(), 0);
  });

  it('is read by Python sqlite3 (what DAMNIT tools use) with the Python types the reference gives', async () => {
    const { db } = fresh;
    const script = [
      'import sqlite3, sys, json',
      'c = sqlite3.connect(sys.argv[1])',
      "rows = c.execute(\"SELECT name, value FROM run_variables WHERE run = 1 AND name IN ('n_trains','xgm_doubled','label','camera_image','broken')\")",
      'print(json.dumps({n: type(v).__name__ for n, v in rows}, sort_keys=True))',
    ].join('\n');
    const { stdout } = await execa(TEST_PYTHON, ['-c', script, db.dir.databaseFile]);
    assert.deepEqual(JSON.parse(stdout), {
      broken: 'NoneType',
      camera_image: 'bytes',
      label: 'str',
      n_trains: 'int',
      xgm_doubled: 'float',
    });
  });
});

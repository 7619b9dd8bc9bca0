import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { makeTempDir, runCli } from '../helpers/cli.js';
import { TEST_PYTHON } from '../helpers/paths.js';
import { makeSampleProposal } from '../helpers/python.js';
import { values } from '../listener/helpers.js';

const tmp = makeTempDir('damnit-init-');
after(() => tmp.cleanup());

/** Where the facility keeps proposals, for these tests: <root>/<instrument>/<cycle>/p<NNNNNN>. */
const dataRoot = path.join(tmp.dir, 'exp');
const env = { XFEL_DATA_ROOT: dataRoot };

function dbRows(db: string, sql: string): unknown[] {
  const conn = new Database(path.join(db, 'runs.sqlite'), { readonly: true });
  try {
    return conn.prepare(sql).all();
  } finally {
    conn.close();
  }
}

describe('init', () => {
  test("PROPOSAL: the facility's database directory, a database and the instrument's starting context, which runs", async () => {
    const proposal = path.join(dataRoot, 'MID', '202601', 'p001234');
    await makeSampleProposal(proposal, ['--runs', '1', '--trains', '4']);
    const res = await runCli(['init', '1234'], { cwd: tmp.dir, env });
    assert.equal(res.code, 0, res.stderr);
    const db = path.join(proposal, 'usr', 'Shared', 'amore');
    assert.equal(
      res.stdout,
      `Setting up DAMNIT in ${db}\nCreated ${db}/runs.sqlite for proposal 1234\nWrote a starting context.py for MID (SA2)\n`,
    );
    const context = readFileSync(path.join(db, 'context.py'), 'utf8');
    assert.match(context, /^XGM = "SA2_XTD1_XGM\/XGM\/DOOCS"$/m);

    const checked = await runCli(['check', 'context.py'], { cwd: db });
    assert.equal(checked.code, 0, checked.stdout + checked.stderr);
    assert.equal((await runCli(['db-config', 'context_python', TEST_PYTHON], { cwd: db })).code, 0);
    const processed = await runCli(['reprocess', '1'], { cwd: db, env });
    assert.equal(processed.code, 0, processed.stderr);
    const v = values(db);
    assert.equal(v.get('r1.trains'), 4);
    assert.equal(v.get('r1.pulses_per_train'), 17);
    assert.equal(typeof v.get('r1.pulse_energy'), 'number');
    assert.equal(typeof v.get('r1.raw_gb'), 'number');

    const again = await runCli(['init', '1234'], { cwd: tmp.dir, env });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^Kept the database already there \(proposal 1234\)\nKept the context\.py already there$/m);
    assert.equal(readFileSync(path.join(db, 'context.py'), 'utf8'), context);
  });

  test('DIR --context FILE; a directory outside a proposal needs --proposal', async () => {
    const mine = path.join(tmp.dir, 'mine.py');
    writeFileSync(mine, 'from damnit_ctx import Variable\n');
    const dir = path.join(tmp.dir, 'scratch', 'amore');
    const refused = await runCli(['init', dir, '--context', mine], { cwd: tmp.dir, env });
    assert.equal(refused.code, 1);
    assert.equal(refused.stderr, 'Error: --proposal is required if not in a proposal directory\n');

    const res = await runCli(['init', dir, '--context', mine, '--proposal', '4321'], { cwd: tmp.dir, env });
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, new RegExp(`^Copied ${mine} to ${dir}/context\\.py$`, 'm'));
    assert.equal(readFileSync(path.join(dir, 'context.py'), 'utf8'), 'from damnit_ctx import Variable\n');
    assert.deepEqual(dbRows(dir, "SELECT value FROM metameta WHERE key = 'proposal'"), [{ value: 4321 }]);

    const missing = await runCli(['init', path.join(tmp.dir, 'other'), '--proposal', '1', '--context', 'nope.py'], { cwd: tmp.dir });
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, 'Error: nope.py is not a file\n');
    const unknown = await runCli(['init', '7777'], { cwd: tmp.dir, env });
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /^Error: cannot find proposal 7777: there is no p007777 under .*\/exp\/\*\/\*\/ /);
  });

  test("--like: the context, the settings and the user-editable variables of an earlier beamtime's database", async () => {
    const earlier = path.join(tmp.dir, 'p002000', 'usr', 'Shared', 'amore');
    mkdirSync(earlier, { recursive: true });
    writeFileSync(path.join(earlier, 'context.py'), 'from damnit_ctx import Variable\n# the earlier one\n');
    for (const args of [
      ['proposal', '2000'],
      ['db-config', 'context_python', TEST_PYTHON],
      ['db-config', 'slurm_partition', 'allgpu'],
      ['db-config', 'slurm_reservation', 'upex_002000'],
      ['db-config', '--num', 'run_timeout', '600'],
    ]) {
      assert.equal((await runCli(args, { cwd: earlier })).code, 0);
    }
    // What the GUI writes for a column its users fill in by hand.
    const conn = new Database(path.join(earlier, 'runs.sqlite'));
    conn.prepare("INSERT INTO variables (name, type, title, description) VALUES ('sample', 'string', 'Sample', 'what was in the beam')").run();
    conn.close();

    const next = path.join(tmp.dir, 'p002001', 'usr', 'Shared', 'amore');
    const res = await runCli(['init', next, '--like', earlier], { cwd: tmp.dir, env });
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /^Created .*runs\.sqlite for proposal 2001$/m);
    assert.match(res.stdout, new RegExp(`^Copied ${earlier}/context\\.py to ${next}/context\\.py$`, 'm'));
    assert.match(res.stdout, /^Copied 4 settings \(concurrent_jobs, context_python, slurm_partition, run_timeout\) and 1 user-editable variable from /m);
    assert.equal(readFileSync(path.join(next, 'context.py'), 'utf8'), 'from damnit_ctx import Variable\n# the earlier one\n');
    const settings = Object.fromEntries(
      (dbRows(next, 'SELECT key, value FROM metameta') as { key: string; value: unknown }[]).map((r) => [r.key, r.value]),
    );
    assert.equal(settings.proposal, 2001);
    assert.equal(settings.context_python, TEST_PYTHON);
    assert.equal(settings.slurm_partition, 'allgpu');
    assert.equal(settings.run_timeout, 600);
    assert.equal(settings.slurm_reservation, undefined, "a reservation belongs to its beamtime");
    assert.notEqual(settings.db_id, undefined);
    assert.deepEqual(dbRows(next, 'SELECT name, type, title, description FROM variables'), [
      { name: 'sample', type: 'string', title: 'Sample', description: 'what was in the beam' },
    ]);
    assert.ok(
      (dbRows(next, "SELECT name FROM pragma_table_info('runs')") as { name: string }[]).some((c) => c.name === 'sample'),
      'the runs view has its column',
    );
  });
});

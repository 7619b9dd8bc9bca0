import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeTempDir, runCli } from '../helpers/cli.js';
import { FIXTURES_DIR, TEST_PYTHON } from '../helpers/paths.js';
import { h5dump, pythonJson } from '../helpers/python.js';
import { makeProposal as makeSampleDatabase, rows, valueOf } from '../helpers/proposal.js';

const tmp = makeTempDir('damnit-reprocess-');
after(() => tmp.cleanup());

const HEADER = 'import os, time\nimport numpy as np\nfrom damnit_ctx import Variable, Cell, Skip\n\n';

/** A proposal named `name` under the test's directory, with `runs` sample runs. */
async function makeProposal(name: string, runs: number, context: string): Promise<{ root: string; db: string }> {
  return makeSampleDatabase(path.join(tmp.dir, name), runs, context);
}

describe("reprocess: the seed's example context on sample runs", () => {
  let db: string;
  let root: string;
  before(async () => {
    const context = readFileSync(path.join(FIXTURES_DIR, 'sample', 'context.py'), 'utf8');
    ({ db, root } = await makeProposal('seed', 3, context));
  });

  test('records values in the table and the HDF5 files that match the raw data', async () => {
    const res = await runCli(['reprocess', '1', '2', '3'], { cwd: db });
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /Processed 3 runs: 3 ok, 0 failed/);
    for (const run of [1, 2, 3]) {
      const expected = await pythonJson<{ mean: number; pulses: number }>(
        String.raw`
import json, sys, h5py, numpy as np
path = "%s/raw/r%04d/RAW-R%04d-DA01-S00000.h5" % (sys.argv[1], int(sys.argv[2]), int(sys.argv[2]))
with h5py.File(path, "r") as f:
    xgm = f["INSTRUMENT/SA2_XTD1_XGM/XGM/DOOCS:output/data/intensityTD"][:]
    bunches = f["CONTROL/SA2_XTD1_XGM/XGM/DOOCS/pulseEnergy/numberOfBunchesActual/value"][:]
print(json.dumps({"mean": float(xgm[:, xgm[0] > 1].mean(axis=1).mean()), "pulses": float(bunches[0])}))
`,
        [root, String(run)],
      );
      const mean = valueOf(db, run, 'xgm_intensity') as number;
      assert.ok(Math.abs(mean - expected.mean) < 1e-4 * expected.mean, `r${run} mean ${mean} != ${expected.mean}`);
      assert.equal(Number(valueOf(db, run, 'pulses')), expected.pulses);
      const dump = await h5dump(path.join(db, 'extracted_data', `p1234_r${run}.h5`));
      // A DataArray is a NetCDF group named after the variable, as the reference writes it.
      assert.equal(dump.get('xgm_intensity')?.attrs._damnit_objtype, 'dataarray');
      assert.deepEqual(dump.get('xgm_intensity/trainId')?.shape, [20], 'per-train data stored in full');
      assert.equal(dump.get('.reduced/pulses')?.value, expected.pulses);
    }
  });

  test('`all` reprocesses the runs already recorded, and `table` shows them', async () => {
    const res = await runCli(['reprocess', 'all'], { cwd: db });
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /Reprocessing 3 runs already recorded, skipping 0\.\.\./);
    const table = await runCli(['table'], { cwd: db });
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^Run +XGM intensity \[uJ\] +Pulses$/m);
    assert.equal(table.stdout.trim().split('\n').length, 5);
  });

  test('a run whose raw directory does not exist is skipped with a warning naming it', async () => {
    const res = await runCli(['reprocess', '2', '42'], { cwd: db });
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stderr, /Warning: skipping 1 runs because they don't exist: \[42\] \(no .*raw\/r0042\)/);
    assert.match(res.stdout, /Processed 1 run: 1 ok, 0 failed/);
  });

  test('run numbers must be integers', async () => {
    const res = await runCli(['reprocess', '1', 'two'], { cwd: db });
    assert.equal(res.code, 1);
    assert.match(res.stderr, /^Error: Run numbers must be integers \(got 'two'\)$/m);
  });
});

describe('reprocess: selection, failures and what they leave behind', () => {
  test('--match computes matching variables and adds their dependencies back', async () => {
    const { db } = await makeProposal(
      'match',
      1,
      HEADER +
        '@Variable(title="Base")\ndef base(run):\n    return 2\n\n' +
        '@Variable(title="Doubled value")\ndef doubled(run, b: "var#base"):\n    return b * 2\n\n' +
        '@Variable(title="Other")\ndef other(run):\n    return 7\n',
    );
    assert.equal((await runCli(['reprocess', '1'], { cwd: db })).code, 0);
    const before = new Map(rows(db).map((r) => [r.name, r.timestamp]));
    const res = await runCli(['reprocess', '1', '--match', 'DOUBLED'], { cwd: db });
    assert.equal(res.code, 0, res.stderr);
    const afterRows = new Map(rows(db).map((r) => [r.name, r]));
    assert.equal(afterRows.get('doubled')?.value, 4);
    assert.ok((afterRows.get('doubled')?.timestamp ?? 0) > (before.get('doubled') ?? Infinity), 'doubled rewritten');
    assert.ok((afterRows.get('base')?.timestamp ?? 0) > (before.get('base') ?? Infinity), 'dependency base rewritten');
    assert.equal(afterRows.get('other')?.timestamp, before.get('other'), 'unmatched variable untouched');
  });

  test('--mock runs without any run files', async () => {
    const dir = path.join(tmp.dir, 'mock-only');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'context.py'), HEADER + '@Variable(title="Trains")\ndef n(run):\n    return len(run.train_ids)\n');
    assert.equal((await runCli(['proposal', '99'], { cwd: dir })).code, 0);
    assert.equal((await runCli(['db-config', 'context_python', TEST_PYTHON], { cwd: dir })).code, 0);
    const res = await runCli(['reprocess', '5', '--mock'], { cwd: dir });
    assert.equal(res.code, 0, res.stderr);
    assert.equal(valueOf(dir, 5, 'n'), 10);
  });

  test('runs are recorded in number order, whichever finishes first', async () => {
    const { db } = await makeProposal(
      'order',
      0,
      HEADER + '@Variable(title="Slow first")\ndef slow(run, n: "meta#run_number"):\n    time.sleep(2 if n == 1 else 0)\n    return n\n',
    );
    assert.equal((await runCli(['db-config', '--num', 'concurrent_jobs', '2'], { cwd: db })).code, 0);
    const res = await runCli(['reprocess', '2', '1', '--mock'], { cwd: db });
    assert.equal(res.code, 0, res.stderr);
    assert.ok(res.stderr.indexOf('r2 (p1234): done') < res.stderr.indexOf('r1 (p1234): done'), 'run 2 finished first');
    // The reference's Python API lists runs as SQLite returns them: db.runs().
    const listed = await pythonJson<number[]>(
      'import json, sqlite3, sys\n' +
        'conn = sqlite3.connect(sys.argv[1])\n' +
        'print(json.dumps([r[0] for r in conn.execute("SELECT run FROM run_info WHERE start_time IS NOT NULL")]))',
      [path.join(db, 'runs.sqlite')],
    );
    assert.deepEqual(listed, [1, 2]);
  });

  test('a hanging variable: the run is stopped at run_timeout, reported failed keeping what it finished, other runs go on', async () => {
    const { db } = await makeProposal(
      'hang',
      2,
      HEADER +
        '@Variable(title="Run")\ndef number(run, n: "meta#run_number"):\n    return n\n\n' +
        '@Variable(title="Slow")\ndef slow(run, n: "meta#run_number"):\n    if n == 2:\n        time.sleep(600)\n    return 1\n',
    );
    // Long enough for the worker's start and the fast run on a loaded machine.
    assert.equal((await runCli(['db-config', '--num', 'run_timeout', '10'], { cwd: db })).code, 0);
    const res = await runCli(['reprocess', '1', '2'], { cwd: db });
    assert.equal(res.code, 1, res.stdout + res.stderr);
    assert.match(res.stderr, /r2 \(p1234\): FAILED .*time limit of 0:00:10 \(db-config run_timeout\) while computing 'slow'; 1 finished variable kept/);
    assert.match(res.stdout, /Processed 2 runs: 1 ok, 1 failed/);
    assert.equal(valueOf(db, 1, 'slow'), 1);
    assert.equal(valueOf(db, 2, 'number'), 2, 'the stopped run keeps what it finished');
    const slow = rows(db).find((r) => r.run === 2 && r.name === 'slow');
    assert.match(JSON.parse(slow?.attributes ?? '{}').error, /^stopped after the run time limit of 0:00:10/);
  });

  test('a process killed mid-run keeps what it finished, the variable it was in an error, in both files; the next reprocess succeeds', async () => {
    const good = HEADER + '@Variable(title="Value")\ndef value(run):\n    return 1.5\n\n@Variable(title="Image")\ndef image(run):\n    return np.ones((20, 30))\n';
    const { db } = await makeProposal('killed', 1, good);
    assert.equal((await runCli(['reprocess', '1'], { cwd: db })).code, 0);
    const h5 = path.join(db, 'extracted_data', 'p1234_r1.h5');
    const before = await h5dump(h5);

    writeFileSync(
      path.join(db, 'context.py'),
      HEADER +
        '@Variable(title="Value")\ndef value(run):\n    return 2.5\n\n' +
        '@Variable(title="Image")\ndef image(run, v: "var#value"):\n    os.kill(os.getpid(), 9)\n',
    );
    const killed = await runCli(['reprocess', '1'], { cwd: db });
    assert.equal(killed.code, 1);
    assert.match(killed.stderr, /r1 \(p1234\): FAILED .*killed by SIGKILL.* while computing 'image'; 1 finished variable kept/);
    assert.equal(valueOf(db, 1, 'value'), 2.5, 'database keeps the finished result');
    const afterKill = await h5dump(h5);
    assert.equal(afterKill.get('.reduced/value')?.value, 2.5, 'HDF5 keeps the finished result');
    assert.notDeepEqual(before.get('.reduced/value'), afterKill.get('.reduced/value'));
    assert.ok(!afterKill.has('image/data'));
    assert.match(String(afterKill.get('.errors/image')?.value), /killed by SIGKILL/);
    assert.match(JSON.parse(rows(db).find((r) => r.name === 'image')?.attributes ?? '{}').error, /killed by SIGKILL/);

    writeFileSync(path.join(db, 'context.py'), good.replace('1.5', '3.5'));
    const again = await runCli(['reprocess', '1'], { cwd: db });
    assert.equal(again.code, 0, again.stderr);
    assert.equal(valueOf(db, 1, 'value'), 3.5);
  });

  test('a context that cannot load fails before any run, with file:line, and changes nothing', async () => {
    const { db } = await makeProposal('broken', 1, HEADER + '@Variable(title="A")\ndef a(run):\n    return 1\n');
    assert.equal((await runCli(['reprocess', '1'], { cwd: db })).code, 0);
    writeFileSync(path.join(db, 'context.py'), HEADER + '@Variable(title="A")\ndef a(run)\n    return 2\n');
    const res = await runCli(['reprocess', '1'], { cwd: db });
    assert.equal(res.code, 1);
    assert.match(res.stderr, /^context\.py:6:\d+: .*/m);
    assert.match(res.stderr, /^Error: context\.py cannot be loaded; no run was processed$/m);
    assert.equal(valueOf(db, 1, 'a'), 1);
  });

  test('errors inside variables are results, not failures', async () => {
    const { db } = await makeProposal(
      'errors',
      1,
      HEADER + '@Variable(title="Bad")\ndef bad(run):\n    return 1 / 0\n\n@Variable(title="Needs bad")\ndef needs(run, b: "var#bad"):\n    return b\n',
    );
    const res = await runCli(['reprocess', '1'], { cwd: db });
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stderr, /r1 \(p1234\): done .*2 variables, 2 errors/);
    const needs = rows(db).find((r) => r.name === 'needs');
    assert.deepEqual(JSON.parse(needs?.attributes ?? '{}'), {
      error: 'Skipped due to missing dependency:\n└ (bad) failed: ZeroDivisionError: division by zero',
      error_cls: 'DependencyError',
    });
  });

  test('outside a database directory it says where to run it', async () => {
    const res = await runCli(['reprocess', '1'], { cwd: tmp.dir });
    assert.equal(res.code, 1);
    assert.match(res.stderr, /^Error: no runs\.sqlite in .*amore-proto proposal/m);
    assert.ok(!existsSync(path.join(tmp.dir, 'runs.sqlite')));
  });
});

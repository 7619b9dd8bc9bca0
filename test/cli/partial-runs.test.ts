/**
 * Issue 11: no long run lost. A run stopped after its third of five variables (kill -9 of the
 * run's child, its time limit, a variable that ignores SIGTERM) keeps the three it finished in
 * both runs.sqlite and its HDF5 file, read back with h5py, and records the interrupted one as an
 * error saying why; the fifth, never started, leaves nothing.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { execa } from 'execa';
import { makeTempDir, runCli } from '../helpers/cli.js';
import { CLI_PATH } from '../helpers/paths.js';
import { entry, h5dump } from '../helpers/python.js';
import { eventually, makeDatabase } from '../listener/helpers.js';

const tmp = makeTempDir('damnit-partial-runs-');
after(() => tmp.cleanup());

/** Five variables; the fourth leaves its pid in `mark`, then does `stall` (Python lines). */
function fiveVariables(mark: string, stall: string[]): string {
  const body = stall.map((line) => `    ${line}`).join('\n');
  return `import os, signal, time
from damnit_ctx import Variable

@Variable(title="One")
def v1(run):
    return 1

@Variable(title="Two")
def v2(run):
    return 2

@Variable(title="Three")
def v3(run):
    return "three"

@Variable(title="Four")
def v4(run):
    with open(${JSON.stringify(mark)}, "w") as f:
        f.write(str(os.getpid()))
${body}
    return 4

@Variable(title="Five")
def v5(run):
    return 5
`;
}

interface Row {
  name: string;
  value: unknown;
  attributes: string | null;
}

function rows(db: string): Map<string, Row> {
  const conn = new Database(path.join(db, 'runs.sqlite'), { readonly: true });
  try {
    const all = conn.prepare('SELECT name, value, attributes FROM run_variables WHERE run = 1').all() as Row[];
    return new Map(all.map((row) => [row.name, row]));
  } finally {
    conn.close();
  }
}

/** Both files hold v1..v3, the error of v4 (matching `why`), and nothing of v5. */
async function assertKept(db: string, why: RegExp): Promise<void> {
  const stored = rows(db);
  assert.equal(stored.get('v1')?.value, 1);
  assert.equal(stored.get('v2')?.value, 2);
  assert.equal(stored.get('v3')?.value, 'three');
  const error = JSON.parse(stored.get('v4')?.attributes ?? '{}') as { error?: string; error_cls?: string };
  assert.equal(stored.get('v4')?.value, null);
  assert.match(String(error.error), why);
  assert.equal(error.error_cls, 'RunStopped');
  assert.equal(stored.has('v5'), false);

  const dump = await h5dump(path.join(db, 'extracted_data', 'p1234_r1.h5'));
  assert.equal(entry(dump, 'v1/data').value, 1);
  assert.equal(entry(dump, 'v2/data').value, 2);
  assert.equal(entry(dump, '.reduced/v3').value, 'three');
  assert.match(String(entry(dump, '.errors/v4').value), why);
  assert.equal(entry(dump, '.errors/v4').attrs.type, 'RunStopped');
  assert.equal(dump.has('v4'), false);
  assert.equal(dump.has('v5'), false);
  assert.equal(dump.has('.reduced/v5'), false);
}

describe('a run stopped after three of its five variables keeps them', () => {
  test('kill -9 of the run\'s child', async () => {
    const mark = path.join(tmp.dir, 'killed-pid');
    const db = await makeDatabase(path.join(tmp.dir, 'killed'), fiveVariables(mark, ['time.sleep(600)']));
    const running = execa(process.execPath, [CLI_PATH, 'reprocess', '1', '--mock'], { cwd: db, reject: false, env: { NO_COLOR: '1' } });
    const pid = await eventually('the fourth variable to start', () =>
      existsSync(mark) && readFileSync(mark, 'utf8') !== '' ? Number(readFileSync(mark, 'utf8')) : undefined,
    );
    process.kill(pid, 'SIGKILL');
    const res = await running;
    assert.equal(res.exitCode, 1, res.stderr);
    assert.match(res.stderr, /r1 \(p1234\): FAILED .*killed by SIGKILL.* while computing 'v4'; 3 finished variables kept/);
    await assertKept(db, /^the run was stopped before this variable finished: .*killed by SIGKILL/);
  });

  // The limits leave room for the worker's start on a loaded machine: the fast variables finish
  // long before them, the fourth never does.
  test('its time limit, slurm_time when run_timeout is not set', async () => {
    const mark = path.join(tmp.dir, 'timeout-pid');
    const db = await makeDatabase(path.join(tmp.dir, 'timeout'), fiveVariables(mark, ['time.sleep(600)']));
    assert.equal((await runCli(['db-config', 'slurm_time', '0:15'], { cwd: db })).code, 0);
    const res = await runCli(['reprocess', '1', '--mock'], { cwd: db });
    assert.equal(res.code, 1, res.stderr);
    assert.match(res.stderr, /r1 \(p1234\): FAILED .*stopped after the run time limit of 0:00:15 \(db-config slurm_time\) while computing 'v4'; 3 finished variables kept/);
    await assertKept(db, /^stopped after the run time limit of 0:00:15 \(db-config slurm_time\)$/);
  });

  test('its time limit reached in a variable that ignores SIGTERM', async () => {
    const mark = path.join(tmp.dir, 'ignores-pid');
    const db = await makeDatabase(
      path.join(tmp.dir, 'ignores'),
      fiveVariables(mark, ['signal.signal(signal.SIGTERM, signal.SIG_IGN)', 'while True:', '    time.sleep(1)']),
    );
    assert.equal((await runCli(['db-config', '--num', 'run_timeout', '15'], { cwd: db })).code, 0);
    const res = await runCli(['reprocess', '1', '--mock'], { cwd: db });
    assert.equal(res.code, 1, res.stderr);
    assert.match(res.stderr, /stopped after the run time limit of 0:00:15 \(db-config run_timeout\) while computing 'v4'/);
    await assertKept(db, /^stopped after the run time limit of 0:00:15 \(db-config run_timeout\)$/);
  });
});

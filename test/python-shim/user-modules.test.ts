// Modules next to context.py that share a name with one of the shim's own (results.py,
// runner.py, worker.py) are the ones the context imports, and `damnit_ctx` stays the shim's:
// through the built CLI, in read-context, reprocess (warm worker) and reprocess --watch (a fresh
// interpreter per run), reading back what runs.sqlite recorded.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { makeTempDir, runCli } from '../helpers/cli.js';
import { TEST_PYTHON } from '../helpers/paths.js';

const tmp = makeTempDir('damnit-user-modules-');
after(() => tmp.cleanup());

const USER_MODULES: Record<string, string> = {
  'results.py': 'TITLE = "Title from the user\'s results.py"\nVALUE = 42\n',
  'runner.py': 'NAME = "the user\'s runner"\n',
  'worker.py': 'def double(x):\n    return 2 * x\n',
  // Never imported: `from damnit_ctx import ...` must get the shim's.
  'damnit_ctx.py': 'raise ImportError("the user\'s damnit_ctx.py was imported")\n',
};

const CONTEXT = `from damnit_ctx import Variable
import results
import runner
import worker

@Variable(title=results.TITLE)
def from_results(run, n: "meta#run_number"):
    return results.VALUE + n

@Variable(title="From runner")
def from_runner(run):
    return runner.NAME

@Variable(title="From worker")
def from_worker(run, n: "meta#run_number"):
    return worker.double(n)
`;

function query<T>(db: string, sql: string): T[] {
  const conn = new Database(path.join(db, 'runs.sqlite'), { readonly: true });
  try {
    return conn.prepare(sql).all() as T[];
  } finally {
    conn.close();
  }
}

function recorded(db: string, run: number): Record<string, unknown> {
  const rows = query<{ name: string; value: unknown }>(
    db,
    `SELECT name, value FROM run_variables WHERE run = ${run} ORDER BY name`,
  );
  return Object.fromEntries(rows.map((r) => [r.name, r.value]));
}

describe("a context's own modules named like the shim's", () => {
  const db = path.join(tmp.dir, 'db');
  before(async () => {
    mkdirSync(db, { recursive: true });
    writeFileSync(path.join(db, 'context.py'), CONTEXT);
    for (const [name, source] of Object.entries(USER_MODULES)) writeFileSync(path.join(db, name), source);
    const created = await runCli(['proposal', '1234'], { cwd: db });
    assert.equal(created.code, 0, created.stderr);
    const configured = await runCli(['db-config', 'context_python', TEST_PYTHON], { cwd: db });
    assert.equal(configured.code, 0, configured.stderr);
  });

  test('read-context imports them: the title comes from the user\'s results.py', async () => {
    const res = await runCli(['read-context'], { cwd: db });
    assert.equal(res.code, 0, res.stderr);
    const titles = query<{ name: string; title: string }>(db, 'SELECT name, title FROM variables ORDER BY name');
    assert.deepEqual(titles, [
      { name: 'from_results', title: "Title from the user's results.py" },
      { name: 'from_runner', title: 'From runner' },
      { name: 'from_worker', title: 'From worker' },
    ]);
  });

  test('reprocess in the warm worker records the values they give', async () => {
    const res = await runCli(['reprocess', '1', '--mock'], { cwd: db });
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /Processed 1 run: 1 ok, 0 failed/);
    assert.deepEqual(recorded(db, 1), { from_results: 43, from_runner: "the user's runner", from_worker: 2 });
  });

  test('reprocess --watch, a fresh interpreter per run, records the values they give', async () => {
    const res = await runCli(['reprocess', '--watch', '--mock', '2'], { cwd: db });
    assert.equal(res.code, 0, res.stderr);
    assert.deepEqual(recorded(db, 2), { from_results: 44, from_runner: "the user's runner", from_worker: 4 });
  });
});

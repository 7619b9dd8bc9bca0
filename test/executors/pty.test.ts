// `reprocess --watch`: runs in a real pseudo-terminal (node-pty), the user's output shown as it
// comes, results recorded as usual.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { DatabaseDir } from '../../src/database-dir.js';
import { openDatabase } from '../../src/db/database.js';
import type { RunEnvironment } from '../../src/executors/executor.js';
import { timeLimitReason } from '../../src/executors/local.js';
import { PtyExecutor } from '../../src/executors/pty.js';
import type { RunRequest } from '../../src/runs/run-request.js';
import { makeTempDir, runCli } from '../helpers/cli.js';
import { TEST_PYTHON } from '../helpers/paths.js';

const tmp = makeTempDir('damnit-pty-');
after(() => tmp.cleanup());

const HEADER = 'import os, sys, time\nfrom damnit_ctx import Variable\n\n';

let counter = 0;
function database(context: string, timeoutMs = 120_000): RunEnvironment {
  counter += 1;
  const root = path.join(tmp.dir, `db${counter}`);
  mkdirSync(root, { recursive: true });
  writeFileSync(path.join(root, 'context.py'), context);
  const dir = new DatabaseDir(root);
  openDatabase(dir, { create: true }).close();
  return { dir, python: TEST_PYTHON, proposalPath: path.join(root, 'none'), timeoutMs, mymdcSource: null };
}

function request(run: number): RunRequest {
  return { proposal: 1234, run, runData: 'all', mock: true, match: [], cluster: 'include' };
}

/** Polls until `check` holds; `limitMs` bounds a hung test and is no measurement. */
async function waitUntil(check: () => boolean, what: string, limitMs = 60_000): Promise<void> {
  const end = Date.now() + limitMs;
  while (!check()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

describe('PtyExecutor', () => {
  test("shows the user's output live, in a terminal, and reports the run's results", async () => {
    const go = path.join(tmp.dir, 'go');
    const env = database(
      HEADER +
        '@Variable(title="Progress")\n' +
        'def progress(run):\n' +
        '    print("terminal:", sys.stdout.isatty())\n' +
        '    print("\\x1b[32mgreen\\x1b[0m")\n' +
        '    for i in range(3):\n' +
        '        sys.stdout.write("\\rstep %d/3" % (i + 1))\n' +
        '        sys.stdout.flush()\n' +
        '    print()\n' +
        '    print("waiting for go")\n' +
        `    while not os.path.exists(${JSON.stringify(go)}):\n` +
        '        time.sleep(0.02)\n' +
        '    return 3\n',
    );
    let shown = '';
    const executor = new PtyExecutor(env, { write: (data) => (shown += data) });
    try {
      const running = executor.execute(request(1));
      // The run cannot end before `go` exists: what we see now was shown while it ran.
      await waitUntil(() => shown.includes('waiting for go'), 'the output of the running variable');
      assert.match(shown, /terminal: True/);
      assert.ok(shown.includes('\x1b[32mgreen\x1b[0m'), 'colours pass through');
      assert.ok(shown.includes('\rstep 2/3\rstep 3/3'), 'carriage-return redraws pass through');
      writeFileSync(go, '');
      const outcome = await running;
      assert.ok(outcome.ok, outcome.ok ? '' : outcome.reason);
      assert.deepEqual(outcome.variables.map((v) => [v.name, v.value]), [['progress', { t: 'int', v: '3' }]]);
      assert.match(shown, /INFO:ctxrunner:Computed progress in/, "the shim's log is shown too");
    } finally {
      await executor.close();
    }
  });

  test('a run past its time limit is stopped with the usual message', async () => {
    const env = database(HEADER + '@Variable(title="Slow")\ndef slow(run):\n    print("sleeping")\n    time.sleep(600)\n', 4_000);
    let shown = '';
    const executor = new PtyExecutor(env, { write: (data) => (shown += data) });
    try {
      const outcome = await executor.execute(request(1));
      assert.equal(outcome.ok, false);
      assert.ok((outcome.ok ? '' : outcome.reason).startsWith(timeLimitReason({ timeoutMs: 4_000 })));
      assert.match(shown, /sleeping/);
    } finally {
      await executor.close();
    }
  });
});

describe('reprocess --watch', () => {
  test('runs the runs one by one with their output, records results, ends with the summary', async () => {
    const dir = path.join(tmp.dir, 'cli');
    mkdirSync(dir);
    writeFileSync(
      path.join(dir, 'context.py'),
      HEADER +
        '@Variable(title="Number")\n' +
        'def number(run, n: "meta#run_number"):\n' +
        '    print("hello from run %d, terminal: %s" % (n, sys.stdout.isatty()))\n' +
        '    return n * 10\n',
    );
    for (const args of [['proposal', '1234'], ['db-config', 'context_python', TEST_PYTHON]]) {
      const res = await runCli(args, { cwd: dir });
      assert.equal(res.code, 0, res.stderr);
    }
    const res = await runCli(['reprocess', '--watch', '--mock', '2', '1'], { cwd: dir });
    assert.equal(res.code, 0, res.stderr);
    const order = ['--- r1 (p1234) ---', 'hello from run 1, terminal: True', 'r1 (p1234): done in',
      '--- r2 (p1234) ---', 'hello from run 2, terminal: True', 'r2 (p1234): done in', 'Processed 2 runs: 2 ok, 0 failed'];
    const positions = order.map((text) => res.stdout.indexOf(text));
    assert.ok(positions.every((p) => p >= 0), `missing output; got:\n${res.stdout}`);
    assert.deepEqual([...positions].sort((a, b) => a - b), positions, 'one run after the other');
    const conn = new Database(path.join(dir, 'runs.sqlite'), { readonly: true });
    try {
      assert.deepEqual(conn.prepare("SELECT run, value FROM run_variables WHERE name = 'number' ORDER BY run").all(), [
        { run: 1, value: 10 },
        { run: 2, value: 20 },
      ]);
    } finally {
      conn.close();
    }
    assert.ok(existsSync(path.join(dir, 'extracted_data', 'p1234_r2.h5')));
  });
});

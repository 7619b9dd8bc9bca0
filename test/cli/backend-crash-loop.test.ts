/** A backend that exits soon after each start is told from a running one, by start and status (real supervisord). */
import assert from 'node:assert/strict';
import { chmodSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { DatabaseDir } from '../../src/database-dir.js';
import { shutdownSupervisord } from '../../src/supervisor/control.js';
import { exitsSince } from '../../src/supervisor/health.js';
import { makeTempDir, runCli } from '../helpers/cli.js';
import { TEST_PYTHON } from '../helpers/paths.js';
import { eventually, makeDatabase } from '../listener/helpers.js';

const tmp = makeTempDir('damnit-crash-loop-');
let db: string | undefined;
after(async () => {
  if (db) await shutdownSupervisord(new DatabaseDir(db)).catch(() => undefined);
  tmp.cleanup();
});

/** Sets context_python behind db-config's back (it would refuse an interpreter that does not work). */
function setContextPython(dbPath: string, python: string): void {
  const conn = new Database(path.join(dbPath, 'runs.sqlite'));
  try {
    conn.prepare("UPDATE metameta SET value = ? WHERE key = 'context_python'").run(python);
  } finally {
    conn.close();
  }
}

describe('a crash-looping backend', () => {
  test('backend start and status say CRASH-LOOPING with its last error; fixed, it is RUNNING', async () => {
    const dbPath = await makeDatabase(path.join(tmp.dir, 'p'), 'from damnit_ctx import Variable\n');
    db = dbPath;
    // An interpreter that fails only after Supervisor's start-up grace (1 s): the backend exits after each start.
    const broken = path.join(tmp.dir, 'broken-python');
    writeFileSync(broken, '#!/bin/sh\nsleep 2\necho "this python is broken" >&2\nexit 1\n');
    chmodSync(broken, 0o755);
    setContextPython(dbPath, broken);
    const dir = new DatabaseDir(dbPath);

    const start = await runCli(['backend', 'start'], { cwd: db });
    assert.equal(start.code, 1, start.stdout + start.stderr);
    assert.match(start.stdout, /^damnit: CRASH-LOOPING: the backend exited once since it was started and Supervisor keeps starting it again; its last error in amore\.log: the backend could not start: .+$/m);

    await eventually('a second exit', () => exitsSince(dir, Date.now() - 180_000) >= 2);
    const status = await runCli(['backend', 'status'], { cwd: db });
    assert.equal(status.code, 3, status.stdout);
    assert.match(status.stdout, /^damnit: CRASH-LOOPING: the backend exited \d+ times in the last 3 minutes/m);

    setContextPython(dbPath, TEST_PYTHON);
    const restart = await runCli(['backend', 'restart'], { cwd: db });
    assert.equal(restart.code, 0, restart.stdout + restart.stderr);
    await eventually('the fixed backend ready', async () => (await runCli(['backend', 'status'], { cwd: dbPath })).code === 0);
    const fixed = await runCli(['backend', 'status'], { cwd: db });
    assert.match(fixed.stdout, /^damnit: RUNNING \(pid \d+/m);
  });
});

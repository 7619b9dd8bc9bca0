import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { DatabaseDir } from '../../src/database-dir.js';
import { writeSupervisordConfig } from '../../src/supervisor/config.js';
import {
  SupervisorError,
  ensureBackendRunning,
  SupervisorUnavailableError,
  parseStatus,
  programStatus,
  restartProgram,
  shutdownSupervisord,
  startSupervisord,
  type BackendStatus,
} from '../../src/supervisor/control.js';
import { makeTempDir } from '../helpers/cli.js';
import { processAlive } from '../../src/processes.js';

/**
 * Stands in for the backend: records its arguments, directory and its child's pid in
 * `started-<pid>.json`, writes a line to stdout and one to stderr, and keeps running with a
 * child process in its process group.
 */
const FAKE_BACKEND = `
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
const child = spawn('/bin/sleep', ['600'], { stdio: 'ignore' });
writeFileSync('started-' + process.pid + '.json', JSON.stringify({ argv: process.argv.slice(2), cwd: process.cwd(), child: child.pid }));
console.log('backend started, pid ' + process.pid);
console.error('backend says hello on stderr');
setInterval(() => {}, 1000);
`;

const ARGS = ['listen', 'two words', ' ;x #y', '100%', "it's", '$HOME', ''];

/** Polls a condition the system reaches by itself (restarts, log writes), with a generous bound. */
async function eventually<T>(what: string, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

function runningPid(status: BackendStatus): number {
  assert.equal(status.supervisord, 'running');
  assert.equal(status.state, 'RUNNING', `program state: ${JSON.stringify(status)}`);
  assert.ok(status.pid);
  return status.pid;
}

describe('supervisord running a backend', () => {
  let temp: { dir: string; cleanup: () => void };
  let db: DatabaseDir;

  before(async () => {
    temp = makeTempDir();
    db = new DatabaseDir(temp.dir);
    const script = path.join(db.root, 'fake-backend.mjs');
    writeFileSync(script, FAKE_BACKEND);
    await writeSupervisordConfig(db, { command: [process.execPath, script, ...ARGS] });
  });
  after(async () => {
    // Whatever a failed test left running, supervisord and its program end here.
    if (db) await shutdownSupervisord(db).catch(() => undefined);
    temp?.cleanup();
  });

  const startRecord = (pid: number) => {
    const file = path.join(db.root, `started-${pid}.json`);
    return JSON.parse(readFileSync(file, 'utf8')) as { argv: string[]; cwd: string; child: number };
  };

  test('before it is started, nothing answers', async () => {
    assert.deepEqual(await programStatus(db), { supervisord: 'not-running' });
  });

  test('start runs the program in the database directory with its exact arguments', async () => {
    const pid = runningPid(await startSupervisord(db));
    const record = startRecord(pid);
    assert.deepEqual(record.argv, ARGS);
    assert.equal(record.cwd, db.root);
    const log = await eventually('the program output in amore.log', () => {
      const text = existsSync(db.logFile) ? readFileSync(db.logFile, 'utf8') : '';
      return text.includes('hello on stderr') ? text : undefined;
    });
    assert.match(log, new RegExp(`backend started, pid ${pid}`));
    assert.match(readFileSync(db.supervisordLog, 'utf8'), /spawned: 'damnit'/);
  });

  test('supervisorctl -c supervisord.conf status damnit, as a user types it, says RUNNING', async () => {
    const pid = runningPid(await programStatus(db));
    const result = await execa('supervisorctl', ['-c', 'supervisord.conf', 'status', 'damnit'], { cwd: db.root });
    assert.match(result.stdout, new RegExp(`^damnit\\s+RUNNING\\s+pid ${pid}, uptime \\d+:\\d\\d:\\d\\d$`));
  });

  test('starting again leaves the running program alone', async () => {
    const before = runningPid(await programStatus(db));
    assert.equal(runningPid(await startSupervisord(db)), before);
  });

  test('restart replaces the program, and its whole process group', async () => {
    const before = runningPid(await programStatus(db));
    const oldChild = startRecord(before).child;
    assert.ok(processAlive(oldChild));
    const after = runningPid(await restartProgram(db));
    assert.notEqual(after, before);
    assert.ok(!processAlive(before));
    await eventually('the old child to end', () => (processAlive(oldChild) ? undefined : true));
  });

  test('after kill -9 of the program, Supervisor starts it again by itself', async () => {
    const killed = runningPid(await programStatus(db));
    process.kill(killed, 'SIGKILL');
    const restarted = await eventually('an automatic restart', async () => {
      const status = await programStatus(db);
      return status.supervisord === 'running' && status.state === 'RUNNING' && status.pid !== killed ? status.pid : undefined;
    });
    assert.ok(restarted && processAlive(restarted));
    assert.match(readFileSync(db.supervisordLog, 'utf8'), /exited: damnit \(terminated by SIGKILL; not expected\)/);
  });

  test('shutdown stops the program and supervisord', async () => {
    const pid = runningPid(await programStatus(db));
    const supervisordPid = Number(readFileSync(path.join(db.root, 'supervisord.pid'), 'utf8'));
    await shutdownSupervisord(db);
    assert.ok(!processAlive(supervisordPid));
    assert.ok(!processAlive(pid));
    assert.deepEqual(await programStatus(db), { supervisord: 'not-running' });
    await assert.rejects(restartProgram(db), /supervisord is not running/);
    const started = readdirSync(db.root).filter((f) => f.startsWith('started-'));
    assert.equal(started.length, 3, 'started, restarted by hand, restarted after kill -9: nothing more');
  });
});

describe('making sure the backend runs', () => {
  let temp: { dir: string; cleanup: () => void };
  let db: DatabaseDir;
  let command: string[];

  before(() => {
    temp = makeTempDir();
    db = new DatabaseDir(temp.dir);
    const script = path.join(db.root, 'fake-backend.mjs');
    writeFileSync(script, FAKE_BACKEND);
    command = [process.execPath, script, 'listen'];
  });
  after(async () => {
    if (db) await shutdownSupervisord(db).catch(() => undefined);
    temp?.cleanup();
  });

  test('a port taken by another server since the config was written: a fresh config on another port', async () => {
    const written = await writeSupervisordConfig(db, { command });
    const stranger = http.createServer((_req, res) => res.writeHead(401).end());
    const port = Number(new URL(written.serverUrl).port);
    await new Promise<void>((resolve) => stranger.listen(port, '127.0.0.1', resolve));
    try {
      const pid = runningPid(await ensureBackendRunning(db, { command }));
      assert.ok(processAlive(pid));
      assert.ok(!readFileSync(db.supervisordConfig, 'utf8').includes(written.password), 'new credentials');
      assert.ok(!readFileSync(db.supervisordConfig, 'utf8').includes(`:${port}\n`), 'another port');
    } finally {
      await new Promise<void>((resolve) => stranger.close(() => resolve()));
    }
  });

  test('a running backend is left alone; a stopped one is started again', async () => {
    const pid = runningPid(await programStatus(db));
    assert.equal(runningPid(await ensureBackendRunning(db, { command })), pid);
    await execa('supervisorctl', ['-c', 'supervisord.conf', 'stop', 'damnit'], { cwd: db.root });
    const stopped = await programStatus(db);
    assert.equal(stopped.supervisord === 'running' && stopped.state, 'STOPPED');
    const again = runningPid(await ensureBackendRunning(db, { command }));
    assert.notEqual(again, pid);
  });

  test('restart of a stopped program starts it', async () => {
    await execa('supervisorctl', ['-c', 'supervisord.conf', 'stop', 'damnit'], { cwd: db.root });
    runningPid(await restartProgram(db));
  });
});

describe('supervisor control errors', () => {
  test('without Supervisor installed, the error says so', async () => {
    const { dir, cleanup } = makeTempDir();
    try {
      const db = new DatabaseDir(dir);
      await writeSupervisordConfig(db, { command: ['/bin/true'] });
      await assert.rejects(startSupervisord(db, { env: { PATH: dir } }), (err: unknown) => {
        assert.ok(err instanceof SupervisorUnavailableError);
        assert.match(err.message, /Supervisor is not available on this machine \('supervisorctl' was not found on PATH\)/);
        return true;
      });
    } finally {
      cleanup();
    }
  });

  test('without supervisord.conf, the error names the directory', async () => {
    const { dir, cleanup } = makeTempDir();
    try {
      await assert.rejects(programStatus(new DatabaseDir(dir)), (err: unknown) => {
        assert.ok(err instanceof SupervisorError);
        assert.equal(err.message, `no supervisord.conf in ${dir}: the backend has not been set up to run under Supervisor here`);
        return true;
      });
    } finally {
      cleanup();
    }
  });

  test('status lines of every kind are read', () => {
    assert.deepEqual(parseStatus('damnit                           RUNNING   pid 3793870, uptime 0:00:20'), {
      supervisord: 'running',
      state: 'RUNNING',
      pid: 3793870,
      description: 'pid 3793870, uptime 0:00:20',
    });
    assert.deepEqual(parseStatus('damnit                           FATAL     Exited too quickly (process log may have details)'), {
      supervisord: 'running',
      state: 'FATAL',
      pid: null,
      description: 'Exited too quickly (process log may have details)',
    });
    assert.equal(parseStatus('http://127.0.0.1:9001 refused connection'), null);
  });
});

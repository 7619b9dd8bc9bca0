// What a run's processes leave on the host: processes it started, very long output lines.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { processAlive } from '../../src/processes.js';
import { makeTempDir, runCli } from '../helpers/cli.js';
import { rows, valueOf } from '../helpers/proposal.js';
import { eventually, makeDatabase, readLog, values } from '../listener/helpers.js';

const tmp = makeTempDir('damnit-run-hygiene-');
after(() => tmp.cleanup());

/**
 * Variables that leave processes behind, each writing its pid next to the context: a plain
 * child (`sleep`, in the run's process group) and a daemon (forked twice, in a session of its
 * own) that would never end by itself.
 */
const LEAVING_CONTEXT = `
import os, subprocess, time
from damnit_ctx import Variable

def note(name, pid):
    with open(name + ".pid", "w") as f:
        f.write(str(pid))

@Variable(title="Sleeper")
def sleeper(run):
    note("sleep", subprocess.Popen(["sleep", "100000"]).pid)
    return 1

@Variable(title="Daemon")
def daemon(run):
    r, w = os.pipe()
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.write(w, str(os.getpid()).encode())
            while True:
                time.sleep(1000)
        os._exit(0)
    os.close(w)
    note("daemon", int(os.read(r, 100)))
    return 2
`;

/** The pids a run of LEAVING_CONTEXT noted, once it has noted them. */
function notedPid(db: string, name: string): number {
  return Number(readFileSync(path.join(db, `${name}.pid`), 'utf8'));
}

/** Waits until `pid` has ended (the bound only ends a broken test). */
function gone(pid: number): Promise<boolean> {
  return eventually(`pid ${pid} to end`, () => !processAlive(pid) || undefined, 30_000);
}

describe('a run ends when its variables end', () => {
  test('reprocess returns once the variables are done; the processes they left are gone', async () => {
    const db = await makeDatabase(path.join(tmp.dir, 'leaving'), LEAVING_CONTEXT);
    const res = await runCli(['reprocess', '--mock', '1'], { cwd: db });
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /Processed 1 run: 1 ok, 0 failed/);
    const v = values(db);
    assert.equal(v.get('r1.sleeper'), 1);
    assert.equal(v.get('r1.daemon'), 2);
    assert.ok(await gone(notedPid(db, 'sleep')), 'the sleep the variable started has ended');
    assert.ok(await gone(notedPid(db, 'daemon')), 'the daemon the variable started has ended');
  });

  test('reprocess --watch (a fresh interpreter per run) ends them too', async () => {
    const db = await makeDatabase(path.join(tmp.dir, 'watched'), LEAVING_CONTEXT);
    const res = await runCli(['reprocess', '--watch', '--mock', '1'], { cwd: db });
    assert.equal(res.code, 0, res.stderr);
    assert.equal(values(db).get('r1.daemon'), 2);
    assert.ok(await gone(notedPid(db, 'sleep')));
    assert.ok(await gone(notedPid(db, 'daemon')));
  });

  test('a run killed before its end leaves no daemon either: the warm worker ends it', async () => {
    const context = `${LEAVING_CONTEXT}
import signal

@Variable(title="Crash")
def crash(run, d: "var#daemon"):
    os.kill(os.getpid(), signal.SIGKILL)
`;
    const db = await makeDatabase(path.join(tmp.dir, 'killed'), context);
    const res = await runCli(['reprocess', '--mock', '1'], { cwd: db });
    assert.equal(res.code, 1);
    assert.match(res.stderr + res.stdout, /killed by SIGKILL/);
    assert.ok(await gone(notedPid(db, 'daemon')), 'the daemon of the killed run has ended');
    assert.ok(await gone(notedPid(db, 'sleep')));
  });
});

describe('long output', () => {
  test('a 32 MB line printed and a 32 MB string returned: the run is done, amore.log keeps the line cut', async () => {
    const size = 32 * 1024 * 1024;
    const context = `
from damnit_ctx import Variable

@Variable(title="Printed")
def printed(run):
    print("x" * ${size})
    return 1

@Variable(title="Returned")
def returned(run):
    return "y" * ${size}
`;
    const db = await makeDatabase(path.join(tmp.dir, 'long'), context, { runs: 1 });
    const res = await runCli(['listen', '--test'], { cwd: db, input: '1234 1 raw\n' });
    assert.equal(res.code, 0, res.stderr);
    const v = values(db);
    assert.equal(v.get('r1.printed'), 1);
    assert.equal(String(v.get('r1.returned')).length, size, 'a returned value is kept whole');
    const log = readLog(db);
    const cut = ` INFO  r1 raw> ${'x'.repeat(16_384)} ... [${size - 16_384} more characters]\n`;
    assert.ok(log.includes(cut), 'the printed line, cut to 16,384 characters and the rest counted');
    assert.ok(log.length < 1_000_000, `amore.log holds ${log.length} characters`);
  });
});

describe('memory limit per run', () => {
  const HUNGRY_CONTEXT = `
import numpy as np
from damnit_ctx import Variable

@Variable(title="Hungry")
def hungry(run):
    return float(np.ones(3 * 1024**3, dtype=np.uint8).sum())

@Variable(title="Runaway")
def runaway(run):
    grown = []
    while True:
        grown.append(bytearray(64 * 1024**2))

@Variable(title="Modest")
def modest(run):
    return float(np.arange(1000.0).sum())
`;

  /** The recorded error of one variable of one run. */
  function errorOf(db: string, run: number, name: string): { error: string; error_cls: string } {
    const row = rows(db).find((r) => r.run === run && r.name === name);
    assert.ok(row?.attributes, `no error recorded for r${run} ${name}`);
    return JSON.parse(row.attributes) as { error: string; error_cls: string };
  }

  test('the variable that passes run_memory_limit fails saying so; the others are computed; the worker goes on', async () => {
    const db = await makeDatabase(path.join(tmp.dir, 'hungry'), HUNGRY_CONTEXT);
    assert.equal((await runCli(['db-config', '--num', 'run_memory_limit', '1.5'], { cwd: db })).code, 0);
    // One run at a time: the second runs in the worker after the first hit the limit.
    assert.equal((await runCli(['db-config', '--num', 'concurrent_jobs', '1'], { cwd: db })).code, 0);
    const res = await runCli(['reprocess', '--mock', '1', '2'], { cwd: db });
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /Processed 2 runs: 2 ok, 0 failed/);
    for (const run of [1, 2]) {
      for (const name of ['hungry', 'runaway']) {
        const { error, error_cls: cls } = errorOf(db, run, name);
        assert.equal(cls, 'MemoryError');
        assert.match(error, /^exceeded the run memory limit of 1\.5 GB \(db-config run_memory_limit\)/);
      }
      assert.equal(valueOf(db, run, 'modest'), 499_500);
    }
  });

  test('unset, the limit is half of the machine\'s memory; 0 lifts it', async () => {
    const db = await makeDatabase(path.join(tmp.dir, 'default-limit'), `
import resource
from damnit_ctx import Variable

@Variable(title="Limit")
def limit(run):
    soft, _ = resource.getrlimit(resource.RLIMIT_DATA)
    return -1 if soft == resource.RLIM_INFINITY else soft
`);
    assert.equal((await runCli(['reprocess', '--mock', '1'], { cwd: db })).code, 0);
    const half = Math.floor((os.totalmem() * 0.5));
    const limit = Number(valueOf(db, 1, 'limit'));
    assert.ok(Math.abs(limit - half) < 1024 ** 2, `limit ${limit}, half of the machine's memory ${half}`);
    assert.equal((await runCli(['db-config', '--num', 'run_memory_limit', '0'], { cwd: db })).code, 0);
    assert.equal((await runCli(['reprocess', '--mock', '1'], { cwd: db })).code, 0);
    assert.equal(Number(valueOf(db, 1, 'limit')), -1);
  });

  test('a setting that is not a number of GB is one clear error', async () => {
    const db = await makeDatabase(path.join(tmp.dir, 'bad-limit'), HUNGRY_CONTEXT);
    assert.equal((await runCli(['db-config', 'run_memory_limit', 'lots'], { cwd: db })).code, 0);
    const res = await runCli(['reprocess', '--mock', '1'], { cwd: db });
    assert.equal(res.code, 1);
    assert.match(res.stderr, /^Error: setting run_memory_limit is "lots", not a number of GB: set it with '.* db-config --num run_memory_limit 16' \(0 for no limit\)$/m);
  });
});

// Temporary directories: removed however a command ends, and those of killed commands swept.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { execa } from 'execa';
import { sweepStaleTempDirs } from '../../src/temp-dirs.js';
import { makeTempDir, runCli } from '../helpers/cli.js';
import { CLI_PATH } from '../helpers/paths.js';
import { eventually, makeDatabase } from '../listener/helpers.js';

const tmp = makeTempDir('damnit-temp-dirs-');
after(() => tmp.cleanup());

/** A variable that says it has started, then runs until it is stopped. */
const BLOCKING_CONTEXT = `
import time
from damnit_ctx import Variable

@Variable(title="Blocking")
def blocking(run):
    open("started", "w").close()
    while True:
        time.sleep(1000)
`;

const QUICK_CONTEXT = 'from damnit_ctx import Variable\n\n@Variable(title="Quick")\ndef quick(run):\n    return 1\n';

/** A pid that has ended: that of a process started and waited for. */
async function deadPid(): Promise<number> {
  const child = execa('true');
  await child;
  return child.pid as number;
}

/** A fresh directory to serve as TMPDIR for the commands of one test. */
function privateTmp(name: string): string {
  const dir = path.join(tmp.dir, `${name}-tmp`);
  mkdirSync(dir);
  return dir;
}

/** What the backend left in a TMPDIR. */
function ours(tmpdir: string): string[] {
  return readdirSync(tmpdir).filter((entry) => entry.startsWith('damnit-'));
}

/** `reprocess --mock 1` of a database whose variable blocks, once that variable has started. */
async function blockedReprocess(db: string, tmpdir: string): Promise<{ cli: ReturnType<typeof execa> }> {
  const cli = execa(process.execPath, [CLI_PATH, 'reprocess', '--mock', '1'], {
    cwd: db,
    env: { NO_COLOR: '1', TMPDIR: tmpdir },
    reject: false,
  });
  await eventually('the variable to start', () => existsSync(path.join(db, 'started')) || undefined);
  // Wrapped: a subprocess is a promise, which `await` would wait for.
  return { cli };
}

describe('temporary directories', () => {
  test('the sweep removes those of dead owners only, with what they hold', async () => {
    const root = privateTmp('sweep');
    const dead = await deadPid();
    const make = (name: string, file?: string): string => {
      const dir = path.join(root, name);
      mkdirSync(dir);
      if (file) writeFileSync(path.join(dir, file), 'partial');
      return dir;
    };
    make(`damnit-worker-${dead}-a1b2c3`, 'runs.sock');
    make(`damnit-warm-up-${dead}-x_y`, 'p1_r1.h5');
    make(`damnit-watch-${dead}-zz`);
    make(`damnit-worker-${process.pid}-alive`);
    make('damnit-worker-abcdef');
    make(`other-${dead}-kept`);
    const removed = sweepStaleTempDirs(root).map((dir) => path.basename(dir)).sort();
    assert.deepEqual(removed, [`damnit-warm-up-${dead}-x_y`, `damnit-watch-${dead}-zz`, `damnit-worker-${dead}-a1b2c3`]);
    assert.deepEqual(readdirSync(root).sort(), [`damnit-worker-${process.pid}-alive`, 'damnit-worker-abcdef', `other-${dead}-kept`].sort());
  });

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    test(`reprocess stopped by ${signal} leaves none`, async () => {
      const db = await makeDatabase(path.join(tmp.dir, signal), BLOCKING_CONTEXT);
      const tmpdir = privateTmp(signal);
      const { cli } = await blockedReprocess(db, tmpdir);
      assert.ok(ours(tmpdir).some((entry) => entry.startsWith(`damnit-worker-${cli.pid}-`)), 'the worker socket directory, named by its owner');
      cli.kill(signal);
      const res = await cli;
      assert.match(String(res.stdout), /Processed 1 run: 0 ok, 1 failed; interrupted by SIG/);
      assert.deepEqual(ours(tmpdir), []);
    });
  }

  test('those of a reprocess killed with SIGKILL are removed by the next command that runs a context', async () => {
    const db = await makeDatabase(path.join(tmp.dir, 'sigkill'), BLOCKING_CONTEXT);
    const tmpdir = privateTmp('sigkill');
    const { cli } = await blockedReprocess(db, tmpdir);
    cli.kill('SIGKILL');
    await cli;
    const left = ours(tmpdir);
    assert.ok(left.some((entry) => entry.startsWith(`damnit-worker-${cli.pid}-`)), `left behind: ${left.join(', ')}`);

    writeFileSync(path.join(db, 'context.py'), QUICK_CONTEXT);
    const res = await runCli(['reprocess', '--mock', '1'], { cwd: db, env: { TMPDIR: tmpdir } });
    assert.equal(res.code, 0, res.stderr);
    assert.deepEqual(ours(tmpdir), []);
  });
});

// describeContext on real database directories with Debian's Python.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { describeContext } from '../../src/context/describe.js';
import { DatabaseDir } from '../../src/database-dir.js';
import { makeTempDir } from '../helpers/cli.js';
import { TEST_PYTHON } from '../helpers/paths.js';

const tmp = makeTempDir('damnit-describe-context-');
after(() => tmp.cleanup());

function dbDirWith(name: string, context?: string): DatabaseDir {
  const root = path.join(tmp.dir, name);
  mkdirSync(root, { recursive: true });
  if (context !== undefined) writeFileSync(path.join(root, 'context.py'), context);
  return new DatabaseDir(root);
}

describe('describeContext', () => {
  test('a context that loads: its variables', async () => {
    const dir = dbDirWith('ok', 'from damnit_ctx import Variable\n@Variable(title="A")\ndef a(run):\n    return 1\n');
    const result = await describeContext(dir, TEST_PYTHON, { timeoutMs: 60_000 });
    assert.ok(result.ok);
    assert.deepEqual(
      result.context.variables.map((v) => [v.name, v.title]),
      [['a', 'A']],
    );
    assert.equal(result.context.file, dir.contextFile);
  });

  test('no context.py: a missing problem', async () => {
    const dir = dbDirWith('empty');
    const result = await describeContext(dir, TEST_PYTHON, { timeoutMs: 60_000 });
    assert.ok(!result.ok);
    assert.deepEqual(
      result.problems.map((p) => [p.kind, p.message]),
      [['missing', `no context.py in ${dir.root}`]],
    );
  });

  test('a load error comes back with its traceback', async () => {
    const dir = dbDirWith('broken', 'x = 1\nraise ValueError("bad config")\n');
    const result = await describeContext(dir, TEST_PYTHON, { timeoutMs: 60_000 });
    assert.ok(!result.ok);
    assert.deepEqual(
      result.problems.map((p) => [p.kind, p.message, p.line]),
      [['exception', 'ValueError: bad config', 2]],
    );
    assert.match(result.traceback ?? '', /raise ValueError/);
  });

  test('a context that hangs at import: a timeout problem with the limit and the setting to raise it', async () => {
    const dir = dbDirWith('hang', 'import time\nprint("loading...", flush=True)\ntime.sleep(600)\n');
    const output: string[] = [];
    const result = await describeContext(dir, TEST_PYTHON, {
      timeoutMs: 3_000,
      onOutput: (stream, line) => output.push(`${stream}:${line}`),
    });
    assert.ok(!result.ok);
    assert.deepEqual(
      result.problems.map((p) => [p.kind, p.message]),
      [
        [
          'timeout',
          "context.py took longer than 3 s to load (raise the limit with 'amore-proto db-config context_load_timeout SECONDS')",
        ],
      ],
    );
    assert.deepEqual(output, ['stdout:loading...']);
  });

  test('a context that keeps the interpreter alive after answering does not hold us up', async () => {
    const dir = dbDirWith(
      'thread',
      'import threading, time\nthreading.Thread(target=time.sleep, args=(600,)).start()\n',
    );
    const result = await describeContext(dir, TEST_PYTHON, { timeoutMs: 600_000 });
    assert.ok(result.ok);
  });
});

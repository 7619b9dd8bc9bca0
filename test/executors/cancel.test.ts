// Issue 11: a cancelled run (ExecuteOptions.signal, processRun's `signal`) keeps the variables it
// finished, in runs.sqlite and its HDF5 file, and records the one it was computing as an error
// giving the cancel's reason; with warm workers and with a fresh interpreter per run.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { DatabaseDir } from '../../src/database-dir.js';
import { openDatabase } from '../../src/db/database.js';
import type { RunExecutor, RunEnvironment } from '../../src/executors/executor.js';
import { FreshProcessExecutor } from '../../src/executors/local.js';
import { WarmWorkerExecutor } from '../../src/executors/warm-worker.js';
import { processRun } from '../../src/runs/process-run.js';
import { makeTempDir } from '../helpers/cli.js';
import { TEST_PYTHON } from '../helpers/paths.js';
import { entry, h5dump } from '../helpers/python.js';

const tmp = makeTempDir('damnit-cancel-');
after(() => tmp.cleanup());

function context(mark: string): string {
  return `import os, time
from damnit_ctx import Variable

@Variable(title="One")
def one(run):
    return 1

@Variable(title="Two")
def two(run):
    return 2

@Variable(title="Slow")
def slow(run):
    open(${JSON.stringify(mark)}, "w").close()
    time.sleep(600)
    return 3

@Variable(title="Never")
def never(run):
    return 4
`;
}

for (const [kind, make] of [
  ['a warm worker', (env: RunEnvironment): RunExecutor => new WarmWorkerExecutor(env)],
  ['a fresh interpreter', (env: RunEnvironment): RunExecutor => new FreshProcessExecutor(env)],
] as const) {
  describe(`cancelling a run in ${kind}`, () => {
    test('keeps what it finished and records the interrupted variable with the reason', async () => {
      const root = path.join(tmp.dir, kind.replace(/ /g, '-'));
      mkdirSync(root, { recursive: true });
      const mark = path.join(root, 'slow-started');
      writeFileSync(path.join(root, 'context.py'), context(mark));
      const dir = new DatabaseDir(root);
      const db = openDatabase(dir, { create: true });
      const env: RunEnvironment = { dir, python: TEST_PYTHON, proposalPath: root, timeoutMs: 0, mymdcSource: null };
      const executor = make(env);
      try {
        const controller = new AbortController();
        const running = processRun(
          { proposal: 1234, run: 5, runData: 'all', mock: true, match: [], cluster: 'exclude' },
          { db, executor, env, signal: controller.signal },
        );
        while (!existsSync(mark)) await sleep(50);
        controller.abort('cancelled from the GUI by someone');
        const outcome = await running;
        assert.equal(outcome.ok, false);
        assert.match(outcome.ok ? '' : outcome.reason, /^cancelled from the GUI by someone while computing 'slow'; 2 finished variables kept$/);

        const rows = db.connection
          .prepare('SELECT name, value, attributes FROM run_variables WHERE run = 5 ORDER BY name')
          .all() as { name: string; value: unknown; attributes: string | null }[];
        assert.deepEqual(
          rows.map((r) => [r.name, r.value]),
          [['one', 1], ['slow', null], ['two', 2]],
        );
        assert.deepEqual(JSON.parse(rows[1]?.attributes ?? '{}'), { error: 'cancelled from the GUI by someone', error_cls: 'RunStopped' });
        const dump = await h5dump(dir.runDataFile(1234, 5));
        assert.equal(entry(dump, 'one/data').value, 1);
        assert.equal(entry(dump, 'two/data').value, 2);
        assert.equal(entry(dump, '.errors/slow').value, 'cancelled from the GUI by someone');
        assert.ok(!dump.has('never') && !dump.has('.reduced/never'));
      } finally {
        await executor.close();
        db.close();
      }
    });
  });
}

/** Settings changed while the backend runs apply to its next run; an invalid one fails that run only. */
import assert from 'node:assert/strict';
import { symlinkSync } from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { after, describe, test } from 'node:test';
import { DatabaseDir } from '../../src/database-dir.js';
import { Listener } from '../../src/listener/listener.js';
import { StdinSource } from '../../src/listener/stdin-source.js';
import { createBackendLogger } from '../../src/log.js';
import { makeTempDir, runCli } from '../helpers/cli.js';
import { TEST_PYTHON } from '../helpers/paths.js';
import { eventually, jobRows, makeDatabase, openDb, PROPOSAL, readLog, values } from './helpers.js';

const tmp = makeTempDir('damnit-live-settings-');
after(() => tmp.cleanup());

const CONTEXT = `import sys, time
from damnit_ctx import Variable

@Variable(title='Python')
def python(run):
    return sys.executable

@Variable(title='Slow')
def slow(run, n: 'meta#run_number'):
    if n == 2:
        time.sleep(5)
    return n
`;

describe('settings read live by the backend', () => {
  test('run_timeout, context_python and concurrent_jobs apply to the next run; invalid values fail it and the backend goes on', async () => {
    const dbPath = await makeDatabase(path.join(tmp.dir, 'p'), CONTEXT, { runs: 5 });
    const dir = new DatabaseDir(dbPath);
    const db = openDb(dbPath);
    const { logger, close } = createBackendLogger({ file: dir.logFile, format: 'text' });
    const other = path.join(tmp.dir, 'python-link');
    const input = new PassThrough();
    const listener = await Listener.start({ dir, db, logger, sources: () => [new StdinSource(input)] });
    const config = async (...args: string[]): Promise<string> => {
      const res = await runCli(['db-config', ...args], { cwd: dbPath });
      assert.equal(res.code, 0, res.stderr);
      return res.stderr;
    };
    const job = (run: number) => jobRows(dbPath).find((j) => j.run === run && j.kind === 'raw');
    const settled = (run: number) => eventually(`r${run} settled`, () => {
      const row = job(run);
      return row && (row.state === 'done' || row.state === 'failed') ? row : undefined;
    });
    try {
      input.write(`${PROPOSAL} 1 raw\n`);
      assert.equal((await settled(1)).state, 'done');
      assert.equal(values(dbPath).get('r1.python'), TEST_PYTHON);

      // A shorter time limit: run 2 (5 s) is stopped by it.
      assert.equal(await config('--num', 'run_timeout', '1'), 'The running backend uses the new run_timeout from its next run.\n');
      assert.match(await config('proposal_path', dbPath), /^The running backend reads proposal_path when it starts: 'amore-proto backend restart' to apply it\.$/m);
      await config('-d', 'proposal_path');
      input.write(`${PROPOSAL} 2 raw\n`);
      const two = await settled(2);
      assert.equal(two.state, 'failed');
      assert.match(two.reason ?? '', /stopped after the run time limit of 0:00:01 \(db-config run_timeout\)/);

      // An invalid value: the run that reads it fails, saying which setting; the backend goes on.
      await config('run_timeout', 'soon');
      input.write(`${PROPOSAL} 3 raw\n`);
      const three = await settled(3);
      assert.equal(three.state, 'failed');
      assert.match(three.reason ?? '', /^not started: setting run_timeout is "soon", not a number/);

      // Fixed, and another interpreter: the next run uses it.
      await config('--num', 'run_timeout', '600');
      symlinkSync(TEST_PYTHON, other);
      await config('context_python', other);
      await config('concurrent_jobs', 'lots');
      input.write(`${PROPOSAL} 4 raw\n`);
      assert.equal((await settled(4)).state, 'done');
      assert.equal(values(dbPath).get('r4.python'), other);
      input.end();
      await listener.finished;
    } finally {
      await listener.stop();
      close();
      db.close();
    }
    const log = readLog(dbPath);
    assert.match(log, /settings changed \(run_timeout 1 s\): runs from now on use them/);
    assert.match(log, new RegExp(`settings changed \\(context_python ${escapeRegExp(other)}, run_timeout 600 s\\): runs from now on use them`));
    assert.match(log, /WARN {2}setting concurrent_jobs is "lots", not a number: .*; keeping \d+ runs at once/);
    assert.match(log, /r3 raw: FAILED after .*: not started: setting run_timeout is "soon"/);
  });
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

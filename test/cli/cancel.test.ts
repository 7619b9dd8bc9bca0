/** `cancel`: a queued and a running processing of the backend stopped, said where the GUI and the logs show it. */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { after, describe, test } from 'node:test';
import { DatabaseDir } from '../../src/database-dir.js';
import { Listener } from '../../src/listener/listener.js';
import { StdinSource } from '../../src/listener/stdin-source.js';
import { createBackendLogger } from '../../src/log.js';
import { openGuiUpdates } from '../../src/updates/gui-updates.js';
import { makeTempDir, runCli } from '../helpers/cli.js';
import { FakeBroker } from '../helpers/fake-kafka-producer.js';
import { eventually, jobRows, makeDatabase, openDb, PROPOSAL, values } from '../listener/helpers.js';

const tmp = makeTempDir('damnit-cancel-');
after(() => tmp.cleanup());

const CONTEXT = `import time
from pathlib import Path
from damnit_ctx import Variable

@Variable(title='Quick')
def quick(run):
    return 1

@Variable(title='Slow')
def slow(run, q: 'var#quick'):
    print('waiting for go', flush=True)
    while not Path('go').exists():
        time.sleep(0.05)
    return 2
`;

function processLog(db: string, run: number): string {
  const file = path.join(db, 'process_logs', `r${run}-p1234.out`);
  return existsSync(file) ? readFileSync(file, 'utf8') : '';
}

describe('cancel', () => {
  test('usage: run numbers or --all', async () => {
    const db = await makeDatabase(path.join(tmp.dir, 'usage'), CONTEXT);
    const none = await runCli(['cancel'], { cwd: db });
    assert.equal(none.code, 2);
    assert.match(none.stderr, /give the run numbers to cancel, or --all/);
    const both = await runCli(['cancel', '1', '--all'], { cwd: db });
    assert.equal(both.code, 2);
    const nobody = await runCli(['cancel', '5'], { cwd: db });
    assert.equal(nobody.code, 1);
    assert.equal(nobody.stdout, 'r5: nothing queued or running to cancel (no backend or reprocess is running for this database)\n');
  });

  test('reprocess: its running run stopped, its waiting run skipped', async () => {
    const db = await makeDatabase(path.join(tmp.dir, 'reprocess'), CONTEXT);
    assert.equal((await runCli(['db-config', '--num', 'concurrent_jobs', '1'], { cwd: db })).code, 0);
    const reprocess = runCli(['reprocess', '1', '2', '--mock'], { cwd: db });
    await eventually('run 1 running', () => processLog(db, 1).includes('waiting for go'));
    const res = await runCli(['cancel', '1', '2'], { cwd: db });
    assert.equal(res.code, 0, res.stdout + res.stderr);
    assert.match(res.stdout, /^r1: stopped while running in reprocess \(pid \d+\)\nr2: skipped by reprocess \(pid \d+\), where it was waiting\n$/);
    const done = await reprocess;
    assert.equal(done.code, 1);
    assert.match(done.stderr, /^r1 \(p1234\): FAILED in .*: cancelled by \S+ on \S+ while computing 'slow'; 1 finished variable kept$/m);
    assert.match(done.stderr, /^r2 \(p1234\): FAILED in .*: cancelled by /m);
    assert.match(done.stdout, /Processed 2 runs: 0 ok, 2 failed/);
    // What finished is kept; the variable it was computing is recorded as stopped.
    assert.equal(values(db).get('r1.quick'), 1);
    assert.equal(values(db).get('r1.slow'), null);
  });

  test("the backend's running and queued runs: stopped, logged, announced; twice is nothing; a restart does not bring them back", async () => {
    const dbPath = await makeDatabase(path.join(tmp.dir, 'backend'), CONTEXT, { runs: 2 });
    assert.equal((await runCli(['db-config', '--num', 'concurrent_jobs', '1'], { cwd: dbPath })).code, 0);
    const dir = new DatabaseDir(dbPath);
    const db = openDb(dbPath);
    const { logger, close } = createBackendLogger({ file: dir.logFile, format: 'text' });
    const broker = new FakeBroker();
    const updates = openGuiUpdates(db, { warn: () => undefined, info: () => undefined }, { option: 'b:1', createProducer: broker.factory, heartbeatMs: 3_600_000 });
    const input = new PassThrough();
    let listener = await Listener.start({ dir, db, logger, sources: () => [new StdinSource(input)], updates, updateBrokerOption: 'b:1' });
    try {
      input.write(`${PROPOSAL} 1 raw\n${PROPOSAL} 2 raw\n`);
      await eventually('run 1 running', () => processLog(dbPath, 1).includes('waiting for go'));

      const queued = await runCli(['cancel', '2'], { cwd: dbPath });
      assert.equal(queued.code, 0, queued.stdout + queued.stderr);
      assert.equal(queued.stdout, "r2: the backend's queued raw processing taken off its queue\n");

      const running = await runCli(['cancel', '1'], { cwd: dbPath });
      assert.equal(running.code, 0, running.stdout + running.stderr);
      assert.equal(running.stdout, "r1: the backend's running raw processing stopped\n");
      await eventually('run 1 settled', () => jobRows(dbPath).find((j) => j.run === 1)?.state === 'failed');

      const twice = await runCli(['cancel', '1'], { cwd: dbPath });
      assert.equal(twice.code, 1);
      assert.equal(twice.stdout, 'r1: nothing queued or running to cancel\n');

      const rows = jobRows(dbPath);
      assert.match(rows.find((j) => j.run === 1)?.reason ?? '', /^cancelled by \S+ on \S+ while computing 'slow'; 1 finished variable kept$/);
      assert.match(rows.find((j) => j.run === 2)?.reason ?? '', /^cancelled by /);
      assert.equal(values(dbPath).get('r1.quick'), 1, 'what finished before the cancel is kept');
      assert.equal(values(dbPath).get('r1.slow'), null);
      assert.match(processLog(dbPath, 1), /----- FAILED after \d+\.\d s: cancelled by \S+ on \S+ while computing 'slow'; 1 finished variable kept\n/);
      assert.match(processLog(dbPath, 2), /^----- Cancelled the queued raw processing of r2 \(p1234\): cancelled by /m);
      await eventually('the GUI told both ended', () => {
        const kinds = broker.messages().map((m) => (m as { msg_kind: string }).msg_kind);
        return kinds.filter((k) => k === 'processing_finished').length === 2;
      });
      const ids = new Set(broker.messages().filter((m) => (m as { msg_kind: string }).msg_kind === 'processing_state_set').map((m) => (m as { data: { processing_id: string } }).data.processing_id));
      const finished = new Set(broker.messages().filter((m) => (m as { msg_kind: string }).msg_kind === 'processing_finished').map((m) => (m as { data: { processing_id: string } }).data.processing_id));
      assert.deepEqual(finished, ids);

      await listener.stop();
      // A restart: the cancelled runs stay cancelled.
      writeFileSync(path.join(dbPath, 'go'), '');
      listener = await Listener.start({ dir, db, logger, sources: () => [] });
      await listener.finished;
      assert.deepEqual(jobRows(dbPath).map((j) => `r${j.run} ${j.state}`), ['r1 failed', 'r2 failed']);
    } finally {
      await listener.stop();
      await updates.close(0);
      close();
      db.close();
    }
  });
});

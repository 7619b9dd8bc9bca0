// cancel with process_on slurm, on the real single-node Slurm: a run's own job is scancelled;
// in a warm worker job only the run's child is stopped, and the job takes the next run.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeTempDir, runCli } from '../helpers/cli.js';
import { startSlurmCluster, type SlurmCluster } from '../helpers/slurm-cluster.js';
import { eventually, jobRows, makeDatabase, readLog, values } from '../listener/helpers.js';

const tmp = makeTempDir('damnit-cancel-slurm-');
after(() => tmp.cleanup());

// `slow` waits for the file go<run>, which the test writes for run 2 only.
const CONTEXT = `import os
import time
from pathlib import Path
from damnit_ctx import Variable

@Variable(title='Quick')
def quick(run):
    return 1

@Variable(title='Job')
def job(run):
    return os.environ.get('SLURM_JOB_ID', 'here')

@Variable(title='Slow')
def slow(run, n: 'meta#run_number', q: 'var#quick'):
    print('waiting for go', flush=True)
    while not Path('go%d' % n).exists():
        time.sleep(0.05)
    return 2
`;

function fileText(file: string): string {
  return existsSync(file) ? readFileSync(file, 'utf8') : '';
}

/** The GUI's update messages of kind `kind` that the backend wrote to messages.jsonl. */
function messages(db: string, kind: string): unknown[] {
  return fileText(path.join(db, 'messages.jsonl'))
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as { msg_kind: string })
    .filter((m) => m.msg_kind === kind);
}

describe('cancel with process_on slurm', () => {
  let cluster: SlurmCluster;
  before(async () => {
    cluster = await startSlurmCluster();
  });
  after(async () => {
    await cluster?.stop();
  });

  async function database(name: string, settings: string[][]): Promise<string> {
    const db = await makeDatabase(path.join(tmp.dir, name), CONTEXT, { runs: 2 });
    for (const args of [
      ['db-config', 'process_on', 'slurm'],
      ['db-config', 'noncluster_mem', '1M'],
      ['db-config', 'slurm_time', '00:20:00'],
      ['db-config', '--num', 'concurrent_jobs', '1'],
      ['db-config', 'update_broker', 'file:messages.jsonl'],
      ...settings,
    ]) {
      const res = await runCli(args, { cwd: db });
      assert.equal(res.code, 0, `${args.join(' ')}: ${res.stderr}`);
    }
    return db;
  }

  test("one job per run: the run's job CANCELLED, the run failed with the cancel's reason, the GUI told", async () => {
    const db = await database('job', []);
    const listen = runCli(['listen', '--test'], { cwd: db, env: { ...cluster.env, AMORE_BROKER: '' }, input: '1234 1 raw\n', timeoutMs: 300_000 });
    const jobId = await eventually('run 1 submitted', () => /r1.*submitted as Slurm job (\d+)/.exec(readLog(db))?.[1], 240_000);
    await eventually('run 1 waiting in its job', () => fileText(path.join(db, 'process_logs', 'r1-p1234.out')).includes('waiting for go'), 240_000);
    // What finished before the cancel reaches the table as it finishes.
    await eventually('quick recorded', () => values(db).get('r1.quick') === 1);

    const cancel = await runCli(['cancel', '1'], { cwd: db });
    assert.equal(cancel.code, 0, cancel.stdout + cancel.stderr);
    assert.equal(cancel.stdout, "r1: the backend's running raw processing stopped\n");
    const done = await listen;
    assert.equal(jobRows(db).find((j) => j.run === 1)?.state, 'failed', done.stderr);
    assert.match(
      jobRows(db).find((j) => j.run === 1)?.reason ?? '',
      /^cancelled by \S+ on \S+ while computing 'slow'; 2 finished variables kept in runs\.sqlite, its HDF5 file may miss them$/,
    );
    assert.doesNotMatch(readLog(db), /requeued/);
    assert.equal(values(db).get('r1.quick'), 1, 'what finished before the cancel is kept');
    assert.equal(values(db).get('r1.slow'), null, 'the variable it was computing is recorded as stopped');
    await eventually('the job CANCELLED', async () => (await cluster.showJob(jobId)).JobState === 'CANCELLED');
    assert.equal(messages(db, 'processing_finished').length, 1);
  });

  test('worker jobs: only the run is stopped; its worker job stays and processes the next run', async () => {
    const db = await database('workers', [
      ['db-config', '--num', 'slurm_worker_jobs', '1'],
      ['db-config', 'slurm_worker_host', '127.0.0.1'],
      ['db-config', '--num', 'slurm_worker_idle', '120'],
    ]);
    const listen = runCli(['listen', '--test'], { cwd: db, env: { ...cluster.env, AMORE_BROKER: '' }, input: '1234 1 raw\n1234 2 raw\n', timeoutMs: 300_000 });
    const workerId = await eventually('a worker job submitted', () => /worker job (\d+) submitted/.exec(readLog(db))?.[1], 240_000);
    // What finished before the cancel reaches the table as it finishes.
    await eventually('run 1 computing slow', () => values(db).get('r1.quick') === 1, 240_000);

    const cancel = await runCli(['cancel', '1'], { cwd: db });
    assert.equal(cancel.code, 0, cancel.stdout + cancel.stderr);
    assert.equal(cancel.stdout, "r1: the backend's running raw processing stopped\n");
    await eventually('run 1 failed', () => jobRows(db).find((j) => j.run === 1)?.state === 'failed');
    assert.match(
      jobRows(db).find((j) => j.run === 1)?.reason ?? '',
      /^cancelled by \S+ on \S+ while computing 'slow'; 2 finished variables kept in runs\.sqlite, its HDF5 file may miss them$/,
    );
    // Run 2 waits in the same worker job, which outlived the cancel.
    await eventually('run 2 computing slow', () => values(db).get('r2.quick') === 1);
    assert.equal((await cluster.showJob(workerId)).JobState, 'RUNNING', 'the worker job outlives the cancel');
    writeFileSync(path.join(db, 'go2'), '');

    const done = await listen;
    assert.deepEqual(jobRows(db).map((j) => `r${j.run} ${j.state}`), ['r1 failed', 'r2 done'], done.stderr);
    assert.equal(values(db).get('r1.quick'), 1, 'what finished before the cancel is kept');
    assert.equal(values(db).get('r1.slow'), null, 'the variable it was computing is recorded as stopped');
    assert.equal(values(db).get('r2.slow'), 2);
    assert.equal(String(values(db).get('r2.job')), workerId, 'the next run went to the same worker job');
    assert.equal((readLog(db).match(/worker job \d+ submitted/g) ?? []).length, 1);
    assert.doesNotMatch(readLog(db), /requeued/);
    assert.equal(messages(db, 'processing_finished').length, 2);
  });
});

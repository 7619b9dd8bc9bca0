// Warm workers on the real single-node Slurm: worker jobs that connect back over TCP (127.0.0.1)
// and take runs as they arrive; a worker job killed mid-run, never starting, losing its
// connection, or reaching its time limit during a run.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { DatabaseDir } from '../../src/database-dir.js';
import type { RunEnvironment } from '../../src/executors/executor.js';
import { cancelJob } from '../../src/executors/slurm.js';
import { SlurmWorkerPool } from '../../src/executors/slurm-workers.js';
import type { RunOutcome, RunRequest } from '../../src/runs/run-request.js';
import { makeTempDir } from '../helpers/cli.js';
import { TEST_PYTHON } from '../helpers/paths.js';
import { startSlurmCluster, type SlurmCluster } from '../helpers/slurm-cluster.js';

const tmp = makeTempDir('damnit-slurm-workers-');
after(() => tmp.cleanup());

/**
 * A context whose variable `job` returns the Slurm job it ran in; with `hold`, the first attempt
 * at a run marks its start and then sleeps, so that a test can act on it mid-run.
 */
function environment(name: string, hold: 'none' | 'first' | 'always'): { env: RunEnvironment; marks: string } {
  const root = path.join(tmp.dir, name);
  const marks = path.join(root, 'marks');
  mkdirSync(marks, { recursive: true });
  writeFileSync(
    path.join(root, 'context.py'),
    `import os, time
from damnit_ctx import Variable

@Variable(title="Job")
def job(run, n: "meta#run_number"):
    mark = os.path.join(${JSON.stringify(marks)}, "r%d" % n)
    attempts = len([f for f in os.listdir(${JSON.stringify(marks)}) if f.startswith("r%d-" % n)])
    open("%s-%d" % (mark, attempts + 1), "w").close()
    if ${JSON.stringify(hold)} == "always" or (${JSON.stringify(hold)} == "first" and attempts == 0):
        time.sleep(600)
    return os.environ.get("SLURM_JOB_ID", "none")
`,
  );
  const dir = new DatabaseDir(root);
  mkdirSync(dir.slurmLogsDir, { recursive: true });
  return { env: { dir, python: TEST_PYTHON, proposalPath: root, timeoutMs: 600_000, mymdcSource: null }, marks };
}

const request = (run: number): RunRequest => ({ proposal: 1234, run, runData: 'all', mock: true, match: [], cluster: 'include' });

function jobOf(outcome: RunOutcome): string {
  assert.ok(outcome.ok, outcome.ok ? '' : outcome.reason);
  const value = outcome.variables.find((v) => v.name === 'job')?.value;
  return String(value && 'v' in value ? value.v : value);
}

async function until(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 240_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

describe('warm worker jobs on a real Slurm', () => {
  let cluster: SlurmCluster;
  before(async () => {
    cluster = await startSlurmCluster();
  });
  after(async () => {
    await cluster?.stop();
  });

  const settings = (values: Record<string, string | number>) => ({
    get: (key: string) =>
      ({ concurrent_jobs: 2, noncluster_cpus: 1, noncluster_mem: '1M', slurm_worker_host: '127.0.0.1', slurm_time: '00:20:00', ...values })[key] as
        | string
        | number
        | undefined,
  });

  function pool(env: RunEnvironment, values: Record<string, string | number> = {}, notes: string[] = []): SlurmWorkerPool {
    return new SlurmWorkerPool(env, {
      settings: settings(values),
      listenHost: '127.0.0.1',
      env: cluster.env,
      pollMs: 300,
      onNote: (note) => notes.push(note),
    });
  }

  test('runs go to at most concurrent_jobs worker jobs, which take one run after another', async () => {
    const { env } = environment('basic', 'none');
    const notes: string[] = [];
    const workers = pool(env, {}, notes);
    try {
      const outcomes = await Promise.all([1, 2, 3, 4, 5].map((run) => workers.execute(request(run))));
      const jobs = new Set(outcomes.map(jobOf));
      assert.ok(jobs.size >= 1 && jobs.size <= 2, `runs went to ${[...jobs].join(', ')}`);
      const job = await cluster.showJob([...jobs][0]!);
      assert.equal(job.JobName, 'worker-p1234-damnit');
      assert.equal(job.MinCPUsNode, '1');
      assert.equal(job.TimeLimit, '00:20:00');
      assert.equal(job.StdOut, path.join(env.dir.slurmLogsDir, `worker-p1234-${[...jobs][0]}.out`));
      // A run after the others reuses a warm worker job rather than submitting a new one.
      assert.ok(jobs.has(jobOf(await workers.execute(request(6)))));
    } finally {
      await workers.close();
    }
  });

  test('an idle worker job ends after slurm_worker_idle seconds', async () => {
    const { env } = environment('idle', 'none');
    const workers = pool(env, { slurm_worker_idle: 1, concurrent_jobs: 1 });
    try {
      const jobId = jobOf(await workers.execute(request(1)));
      await until('the idle worker job to end', async () => (await cluster.showJob(jobId)).JobState === 'COMPLETED');
    } finally {
      await workers.close();
    }
  });

  test('a worker job killed mid-run: the run is requeued once and completes in another worker job', async () => {
    const { env, marks } = environment('killed', 'first');
    const notes: string[] = [];
    const workers = pool(env, { concurrent_jobs: 1 }, notes);
    try {
      const outcome = workers.execute(request(1));
      await until('the run to start', () => existsSync(path.join(marks, 'r1-1')));
      const first = workers.workerJobs.find((w) => w.state === 'busy')?.jobId;
      assert.ok(first);
      await cancelJob(first, { env: cluster.env });
      const second = jobOf(await outcome);
      assert.notEqual(second, first);
      assert.ok(existsSync(path.join(marks, 'r1-2')), 'the run was processed a second time');
      assert.ok(
        notes.some((n) => n.startsWith(`r1: worker Slurm job ${first} was CANCELLED`) && n.endsWith('while processing it: requeued to another worker job')),
        notes.join('\n'),
      );
    } finally {
      await workers.close();
    }
  });

  test('a run whose worker job is killed twice is reported, with both jobs', async () => {
    const { env, marks } = environment('killed-twice', 'always');
    const workers = pool(env, { concurrent_jobs: 1 });
    try {
      const outcome = workers.execute(request(1));
      const killed: string[] = [];
      for (const attempt of [1, 2]) {
        await until(`attempt ${attempt}`, () => existsSync(path.join(marks, `r1-${attempt}`)));
        const jobId = workers.workerJobs.find((w) => w.state === 'busy')?.jobId;
        assert.ok(jobId);
        killed.push(jobId);
        await cancelJob(jobId, { env: cluster.env });
      }
      const result = await outcome;
      assert.equal(result.ok, false);
      assert.match(
        result.ok ? '' : result.reason,
        new RegExp(`^lost its worker job twice: worker Slurm job ${killed[0]} was CANCELLED.*; then worker Slurm job ${killed[1]} was CANCELLED`),
      );
    } finally {
      await workers.close();
    }
  });

  test('a worker job that cannot start: runs go to one job each, and the note says why', async () => {
    // A partition of our own whose time limit the worker jobs exceed: Slurm accepts them, and they
    // wait for ever (PartitionTimeLimit), while a run's own job, within the limit, runs.
    const partition = `damnit_short_${process.pid}`;
    await execa('scontrol', ['create', `PartitionName=${partition}`, `Nodes=${cluster.nodeName}`, 'MaxTime=10', 'State=UP'], { env: cluster.env });
    const { env } = environment('never-starts', 'none');
    const notes: string[] = [];
    const workers = pool(env, { slurm_partition: partition, slurm_time: '00:05:00', slurm_worker_time: '01:00:00', slurm_worker_start: 3, concurrent_jobs: 1 }, notes);
    try {
      const jobId = jobOf(await workers.execute(request(1)));
      assert.equal((await cluster.showJob(jobId)).JobName, 'r1-p1234-damnit', 'processed in a job of its own');
      const fallback = notes.find((n) => n.includes('did not start within 3 s'));
      assert.ok(fallback, notes.join('\n'));
      assert.match(fallback, /^worker job (\d+) did not start within 3 s \(Slurm: PENDING, reason PartitionTimeLimit\); runs go to one Slurm job each for the next 10 minutes$/);
      const worker = /^worker job (\d+)/.exec(fallback)![1]!;
      assert.equal((await cluster.showJob(worker)).JobState, 'CANCELLED');
    } finally {
      await workers.close();
      await execa('scontrol', ['delete', `PartitionName=${partition}`], { env: cluster.env, reject: false });
    }
  });

  test('a worker job that loses its connection: the run is requeued to a new worker job', async () => {
    const { env, marks } = environment('connection', 'first');
    const notes: string[] = [];
    const workers = pool(env, { concurrent_jobs: 1 }, notes);
    try {
      const outcome = workers.execute(request(1));
      await until('the run to start', () => existsSync(path.join(marks, 'r1-1')));
      const first = workers.workerJobs.find((w) => w.state === 'busy')?.jobId;
      assert.ok(first);
      // Every connection of that node to the backend's port is reset, as when the network goes.
      const port = await workers.port();
      await execa('ss', ['-K', 'dst', '127.0.0.1', 'dport', '=', String(port)]);
      const second = jobOf(await outcome);
      assert.notEqual(second, first);
      assert.ok(notes.some((n) => n.startsWith(`r1: lost the connection to worker job ${first} on `)), notes.join('\n'));
      await until('the lost worker job to leave the queue', async () => ['CANCELLED', 'FAILED', 'COMPLETED'].includes((await cluster.showJob(first)).JobState ?? ''));
    } finally {
      await workers.close();
    }
  });

  test('a worker job that reaches its time limit during a run: the run is requeued and completes', async () => {
    const { env, marks } = environment('time-limit', 'first');
    const notes: string[] = [];
    const workers = pool(env, { concurrent_jobs: 1, slurm_worker_time: '1' }, notes);
    try {
      const outcome = workers.execute(request(1));
      await until('the run to start', () => existsSync(path.join(marks, 'r1-1')));
      const first = workers.workerJobs.find((w) => w.state === 'busy')?.jobId;
      const second = jobOf(await outcome);
      assert.notEqual(second, first);
      assert.ok(
        notes.some((n) => n.startsWith(`r1: worker Slurm job ${first} reached its time limit and was stopped (TIMEOUT`)),
        notes.join('\n'),
      );
    } finally {
      await workers.close();
    }
  });
});

// process_on slurm: reprocess and listen process runs in Slurm jobs with the reference's names,
// logs and resources (checked with scontrol on the real single-node Slurm); --direct processes
// here; bad settings and a machine without Slurm are said clearly.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { makeTempDir, runCli } from '../helpers/cli.js';
import { TEST_PYTHON } from '../helpers/paths.js';
import { makeSampleProposal } from '../helpers/python.js';
import { startSlurmCluster, type SlurmCluster } from '../helpers/slurm-cluster.js';

const tmp = makeTempDir('damnit-process-on-slurm-');
after(() => tmp.cleanup());

const CONTEXT = `import os
from damnit_ctx import Variable

@Variable(title="Job")
def job(run):
    return os.environ.get("SLURM_JOB_NAME", "here")

@Variable(title="CPUs")
def cpus(run):
    return int(os.environ.get("SLURM_CPUS_PER_TASK", "0"))

@Variable(title="Trains", cluster=True)
def trains(run):
    return len(run.train_ids)
`;

async function proposal(name: string, settings: string[][]): Promise<string> {
  const root = path.join(tmp.dir, name);
  await makeSampleProposal(root, ['--runs', '3', '--trains', '5']);
  const db = path.join(root, 'usr', 'Shared', 'amore');
  mkdirSync(db, { recursive: true });
  writeFileSync(path.join(db, 'context.py'), CONTEXT);
  for (const args of [['proposal', '1234'], ['db-config', 'context_python', TEST_PYTHON], ...settings]) {
    const res = await runCli(args, { cwd: db });
    assert.equal(res.code, 0, `${args.join(' ')}: ${res.stderr}`);
  }
  return db;
}

function values(db: string, name: string): [number, unknown][] {
  const conn = new Database(path.join(db, 'runs.sqlite'), { readonly: true });
  try {
    const rows = conn.prepare('SELECT run, value FROM run_variables WHERE name = ? ORDER BY run').all(name) as { run: number; value: unknown }[];
    return rows.map((r) => [r.run, r.value]);
  } finally {
    conn.close();
  }
}

describe('settings for processing on Slurm', () => {
  test('db-config refuses a noncluster_mem, noncluster_cpus or process_on Slurm would not take, and stores nothing', async () => {
    const db = await proposal('settings', []);
    const mem = await runCli(['db-config', 'noncluster_mem', '25 GB'], { cwd: db });
    assert.equal(mem.code, 1);
    assert.equal(
      mem.stderr,
      "Error: noncluster_mem '25 GB' is not a memory size Slurm accepts: give a whole number with an optional unit K, M, G or T " +
        "(megabytes without one), e.g. 'amore-proto db-config noncluster_mem 25G'; nothing was stored\n",
    );
    const cpus = await runCli(['db-config', 'noncluster_cpus', 'four'], { cwd: db });
    assert.equal(cpus.code, 1);
    assert.match(cpus.stderr, /^Error: noncluster_cpus 'four' is not a number of CPU cores: .*; nothing was stored\n$/);
    const place = await runCli(['db-config', 'process_on', 'cloud'], { cwd: db });
    assert.equal(place.code, 1);
    assert.match(place.stderr, /^Error: process_on is 'cloud', which is not a place runs can be processed: set it with 'amore-proto db-config process_on local' \(this machine\) or '... process_on slurm'; nothing was stored\n$/);
    const listed = await runCli(['db-config'], { cwd: db });
    assert.doesNotMatch(listed.stdout, /noncluster|process_on/);
    for (const [key, value] of [['noncluster_mem', '50G'], ['process_on', 'slurm']]) {
      const ok = await runCli(['db-config', key!, value!], { cwd: db });
      assert.deepEqual([ok.code, ok.stderr], [0, ''], `${key} ${value}`);
    }
  });

  test('a bad noncluster_mem stored by another tool stops reprocess before anything is submitted', async () => {
    const db = await proposal('stored-bad-mem', [['db-config', 'process_on', 'slurm']]);
    const conn = new Database(path.join(db, 'runs.sqlite'));
    conn.prepare("INSERT OR REPLACE INTO metameta (key, value) VALUES ('noncluster_mem', '25 gigabytes')").run();
    conn.close();
    const res = await runCli(['reprocess', '1'], { cwd: db });
    assert.equal(res.code, 1);
    assert.match(res.stderr, /^Error: noncluster_mem '25 gigabytes' is not a memory size Slurm accepts: /m);
    assert.deepEqual(values(db, 'job'), []);
  });

  // Node and Python are named by their full paths: an empty PATH has no sbatch.
  test('without Slurm: process_on slurm says so and how to process here; --direct processes here', async () => {
    const db = await proposal('no-slurm', [['db-config', 'process_on', 'slurm']]);
    const noSlurm = { PATH: path.join(tmp.dir, 'empty-bin') };
    mkdirSync(noSlurm.PATH, { recursive: true });
    const res = await runCli(['reprocess', '1'], { cwd: db, env: noSlurm });
    assert.equal(res.code, 1);
    assert.match(
      res.stderr,
      /^Error: Slurm is not available on this machine \('sbatch' was not found on PATH\): .*; process_on is 'slurm': to process runs on this machine instead, set 'amore-proto db-config process_on local' \(or reprocess with 'amore-proto reprocess --direct \.\.\.'\)$/m,
    );
    const direct = await runCli(['reprocess', '1', '--direct'], { cwd: db, env: { ...noSlurm } });
    // Here, the cluster variable has no Slurm either: the run's other variables are recorded.
    assert.match(direct.stderr, /r1 \(p1234\): FAILED in .*: 2 variables recorded, but the cluster variables trains were not computed: Slurm is not available/);
    assert.deepEqual(values(db, 'job'), [[1, 'here']]);

    // Through worker jobs, each run fails with the same words.
    assert.equal((await runCli(['db-config', '--num', 'slurm_worker_jobs', '1'], { cwd: db })).code, 0);
    const workers = await runCli(['reprocess', '2'], { cwd: db, env: noSlurm });
    assert.equal(workers.code, 1);
    assert.match(workers.stderr, /r2 \(p1234\): FAILED in .*: Slurm is not available on this machine .*; process_on is 'slurm': to process runs on this machine instead/);
  });

  test('listen with a bad noncluster_mem: each run fails with the reason in amore.log, nothing submitted', async () => {
    const db = await proposal('listen-bad-mem', [['db-config', 'process_on', 'slurm']]);
    const conn = new Database(path.join(db, 'runs.sqlite'));
    conn.prepare("INSERT OR REPLACE INTO metameta (key, value) VALUES ('noncluster_mem', 'lots')").run();
    conn.close();
    const res = await runCli(['listen', '--test'], { cwd: db, input: '1234 1 raw\n', env: { PATH: path.join(tmp.dir, 'empty-bin') } });
    assert.equal(res.code, 0, res.stderr);
    assert.match(readFileSync(path.join(db, 'amore.log'), 'utf8'), /FAILED after .*: noncluster_mem 'lots' is not a memory size Slurm accepts/);
    assert.deepEqual(values(db, 'job'), []);
  });

  test('--direct and --cluster together are a usage error', async () => {
    const db = await proposal('contradiction', []);
    const res = await runCli(['reprocess', '1', '--direct', '--cluster'], { cwd: db });
    assert.deepEqual([res.code, res.stderr], [2, 'Error: --direct and --cluster contradict each other: choose one\n']);
  });
});

describe('process_on slurm on a real Slurm', () => {
  let cluster: SlurmCluster;
  before(async () => {
    cluster = await startSlurmCluster();
  });
  after(async () => {
    await cluster?.stop();
  });

  // A memory the test node always has (without RealMemory in slurm.conf it offers 1 MB).
  const RESOURCES = [
    ['db-config', 'process_on', 'slurm'],
    ['db-config', '--num', 'noncluster_cpus', '2'],
    ['db-config', 'noncluster_mem', '1M'],
    ['db-config', 'slurm_time', '00:20:00'],
    ['db-config', 'slurm_partition', 'other'],
  ];

  test('reprocess: one array job p<P>-damnit with the non-cluster resources, --concurrent-jobs as its limit; cluster variables in their own jobs', async () => {
    const db = await proposal('reprocess', RESOURCES);
    const res = await runCli(['reprocess', '1', '2', '3', '--concurrent-jobs', '2'], { cwd: db, env: cluster.env, timeoutMs: 300_000 });
    assert.equal(res.code, 0, res.stderr);
    const arrayId = /Submitted Slurm array job (\d+) \(p1234-damnit\): 3 runs, at most 2 at once/.exec(res.stdout)?.[1];
    assert.ok(arrayId, res.stdout);
    assert.match(res.stdout, /Processed 3 runs: 3 ok, 0 failed/);
    const task = await cluster.showJob(`${arrayId}_1`);
    assert.equal(task.JobName, 'p1234-damnit');
    assert.equal(task.ArrayTaskThrottle, '2');
    assert.equal(task.MinCPUsNode, '2');
    assert.equal(task.MinMemoryNode, '1M');
    assert.equal(task.TimeLimit, '00:20:00');
    assert.equal(task.Partition, 'other');
    assert.equal(task.StdOut, path.join(db, 'process_logs', 'r1-p1234.out'));
    assert.deepEqual(values(db, 'job'), [[1, 'p1234-damnit'], [2, 'p1234-damnit'], [3, 'p1234-damnit']]);
    assert.deepEqual(values(db, 'cpus').map(([run, v]) => [run, Number(v)]), [[1, 2], [2, 2], [3, 2]]);
    assert.deepEqual(values(db, 'trains').map(([run, v]) => [run, Number(v)]), [[1, 5], [2, 5], [3, 5]]);
    for (const run of [1, 2, 3]) {
      const submitted = new RegExp(`r${run} \\(p1234\\): cluster variables submitted as Slurm job (\\d+)`).exec(res.stderr);
      assert.ok(submitted, res.stderr);
      const job = await cluster.showJob(submitted[1]!);
      assert.equal(job.JobName, `r${run}-p1234-damnit`);
      assert.equal(job.Partition, 'other', 'the partition rule applies to cluster jobs');
      assert.match(readFileSync(path.join(db, 'process_logs', `r${run}-p1234.out`), 'utf8'), /Computed cpus in/);
    }
  });

  test('listen: each run in its own job r<R>-p<P>-damnit, logged to process_logs/, process_on read at each run', async () => {
    const db = await proposal('listen', RESOURCES);
    const res = await runCli(['listen', '--test'], { cwd: db, env: cluster.env, input: '1234 1 raw\n', timeoutMs: 300_000 });
    assert.equal(res.code, 0, res.stderr);
    const log = readFileSync(path.join(db, 'amore.log'), 'utf8');
    const jobId = /r1.*submitted as Slurm job (\d+) \(output in process_logs\/r1-p1234\.out\)/.exec(log)?.[1];
    assert.ok(jobId, log);
    const job = await cluster.showJob(jobId);
    assert.equal(job.JobName, 'r1-p1234-damnit');
    assert.equal(job.MinCPUsNode, '2');
    assert.equal(job.MinMemoryNode, '1M');
    assert.equal(job.TimeLimit, '00:20:00');
    assert.equal(job.Partition, 'other');
    assert.equal(job.StdOut, path.join(db, 'process_logs', 'r1-p1234.out'));
    assert.deepEqual(values(db, 'job'), [[1, 'r1-p1234-damnit']]);
    assert.deepEqual(values(db, 'trains').map(([run, v]) => [run, Number(v)]), [[1, 5]]);

    // Changed while no backend runs, or between two runs: the next run follows the setting.
    const local = await runCli(['db-config', 'process_on', 'local'], { cwd: db });
    assert.equal(local.code, 0);
    const again = await runCli(['listen', '--test'], { cwd: db, env: cluster.env, input: '1234 2 raw\n', timeoutMs: 300_000 });
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(values(db, 'job'), [[1, 'r1-p1234-damnit'], [2, 'here']]);
  });

  test('slurm_worker_jobs 1: reprocess and listen send runs to warm worker jobs; cluster variables keep their own jobs', async () => {
    const db = await proposal('workers', [
      ...RESOURCES,
      ['db-config', '--num', 'slurm_worker_jobs', '1'],
      ['db-config', 'slurm_worker_host', '127.0.0.1'],
      ['db-config', '--num', 'slurm_worker_idle', '120'],
    ]);
    const res = await runCli(['reprocess', '1', '2', '3', '--concurrent-jobs', '1'], { cwd: db, env: cluster.env, timeoutMs: 300_000 });
    assert.equal(res.code, 0, res.stderr);
    const worker = /worker job (\d+) submitted \(output in slurm_logs\/worker-p1234-\d+\.out\)/.exec(res.stderr)?.[1];
    assert.ok(worker, res.stderr);
    assert.equal((res.stderr.match(/worker job \d+ submitted/g) ?? []).length, 1, 'one worker job took the three runs');
    const job = await cluster.showJob(worker);
    assert.equal(job.JobName, 'worker-p1234-damnit');
    assert.equal(job.MinCPUsNode, '2');
    assert.equal(job.Partition, 'other');
    assert.deepEqual(values(db, 'job'), [[1, 'worker-p1234-damnit'], [2, 'worker-p1234-damnit'], [3, 'worker-p1234-damnit']]);
    assert.deepEqual(values(db, 'trains').map(([run, v]) => [run, Number(v)]), [[1, 5], [2, 5], [3, 5]]);
    assert.match(res.stderr, /r1 \(p1234\): cluster variables submitted as Slurm job \d+/);

    const listened = await runCli(['listen', '--test'], { cwd: db, env: cluster.env, input: '1234 1 raw\n', timeoutMs: 300_000 });
    assert.equal(listened.code, 0, listened.stderr);
    assert.match(readFileSync(path.join(db, 'amore.log'), 'utf8'), /worker job \d+ submitted \(output in slurm_logs\/worker-p1234-\d+\.out\)/);
  });
});

// cluster=True variables of a run go to a Slurm job: through `reprocess`, on a real Slurm.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { execa } from 'execa';
import { makeTempDir, runCli, type CliResult } from '../helpers/cli.js';
import { TEST_PYTHON } from '../helpers/paths.js';
import { startSlurmCluster, type SlurmCluster } from '../helpers/slurm-cluster.js';
import { h5dump } from '../helpers/python.js';

const tmp = makeTempDir('damnit-cluster-');
after(() => tmp.cleanup());

/** `local_value` runs here; `heavy` is cluster=True; `job_name` depends on it, so it is promoted. */
const CONTEXT = `import os
from damnit_ctx import Variable

@Variable(title="Local")
def local_value(run):
    return 3

@Variable(title="Where local ran")
def local_where(run):
    return os.environ.get("SLURM_JOB_NAME", "here")

@Variable(title="Heavy", cluster=True)
def heavy(run, x: "var#local_value"):
    return x * 7

@Variable(title="Job name")
def job_name(run, h: "var#heavy"):
    return os.environ.get("SLURM_JOB_NAME", "here")
`;

let counter = 0;

/** A database for proposal 1234 with `context` (runs are mocked: no data files needed). */
async function database(context: string, settings: [string, ...string[]][] = []): Promise<string> {
  counter += 1;
  const dir = path.join(tmp.dir, `db${counter}`);
  mkdirSync(dir);
  writeFileSync(path.join(dir, 'context.py'), context);
  for (const args of [['proposal', '1234'], ['db-config', 'context_python', TEST_PYTHON], ...settings]) {
    const res = await runCli(args, { cwd: dir });
    assert.equal(res.code, 0, res.stderr);
  }
  return dir;
}

interface Row {
  name: string;
  value: unknown;
  attributes: string | null;
}

function rowsOf(dir: string, run = 1): Map<string, Row> {
  const conn = new Database(path.join(dir, 'runs.sqlite'), { readonly: true });
  try {
    const rows = conn.prepare('SELECT name, value, attributes FROM run_variables WHERE run = ?').all(run) as Row[];
    return new Map(rows.map((r) => [r.name, r]));
  } finally {
    conn.close();
  }
}

/** The Slurm job id the progress line of a submitted cluster job names. */
function submittedJob(res: CliResult, run = 1): { jobId: string; log: string } {
  const match = new RegExp(`r${run} \\(p1234\\): cluster variables submitted as Slurm job (\\d+) \\(output in (\\S+)\\)`).exec(res.stderr);
  assert.ok(match, `no submission line in:\n${res.stderr}`);
  return { jobId: match[1]!, log: match[2]! };
}

describe('cluster variables in a Slurm job', () => {
  let cluster: SlurmCluster;
  let env: Record<string, string>;

  before(async () => {
    cluster = await startSlurmCluster();
    env = cluster.env;
  });
  after(async () => {
    await cluster?.stop();
  });

  test('the job is r<R>-p<P>-damnit with its log, partition and time limit; its results are recorded', async () => {
    const dir = await database(CONTEXT, [
      ['db-config', 'slurm_partition', 'other'],
      ['db-config', 'slurm_time', '00:10:00'],
    ]);
    const res = await runCli(['reprocess', '1', '--mock'], { cwd: dir, env });
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /Processed 1 run: 1 ok, 0 failed/);
    const { jobId, log } = submittedJob(res);
    assert.equal(log, `slurm_logs/r1-p1234-${jobId}.out`);
    assert.match(res.stderr, new RegExp(`r1 \\(p1234\\): done in .*: 4 variables; cluster variables: Slurm job ${jobId}`));

    const job = await cluster.showJob(jobId);
    assert.equal(job.JobName, 'r1-p1234-damnit');
    assert.equal(job.Partition, 'other');
    assert.equal(job.TimeLimit, '00:10:00');
    assert.equal(job.StdOut, path.join(dir, log));
    assert.equal(job.WorkDir, dir);
    // The shim's log lines (stderr) of the job are in the log file.
    assert.match(readFileSync(path.join(dir, log), 'utf8'), /Computed heavy in/);

    const rows = rowsOf(dir);
    assert.equal(Number(rows.get('local_value')?.value), 3);
    assert.equal(rows.get('local_where')?.value, 'here', 'variables without cluster=True run on this machine');
    assert.equal(Number(rows.get('heavy')?.value), 21);
    assert.equal(rows.get('job_name')?.value, 'r1-p1234-damnit', 'a variable depending on a cluster one runs in the job');

    const h5 = await h5dump(path.join(dir, 'extracted_data', 'p1234_r1.h5'));
    assert.equal(h5.get('.reduced/heavy')?.value, 21);
    assert.equal(h5.get('.reduced/local_where')?.value, 'here', 'the job kept what the local part wrote');
    assert.equal(h5.get('job_name/data')?.value, 'r1-p1234-damnit');
    assert.deepEqual(readdirSync(path.join(dir, 'slurm_logs', '.channels')), [], 'channel files are removed once read');
  });

  // Issue 9: dotted names through the cluster split.
  test("a group's cluster variable and its promoted dependants run in the job, under their dotted names", async () => {
    const dir = await database(
      'import os\nfrom damnit_ctx import Group, Variable\n\n' +
        '@Group\nclass Detector:\n    gain: float = 2.0\n\n' +
        '    @Variable(title="Raw sum")\n    def raw_sum(self, run):\n        return 3\n\n' +
        '    @Variable(title="Heavy", cluster=True)\n    def heavy(self, run, s: "self#raw_sum"):\n        return s * self.gain\n\n' +
        '    @Variable(title="Where")\n    def where(self, run, h: "self#heavy"):\n' +
        '        return os.environ.get("SLURM_JOB_NAME", "here")\n\n' +
        'agipd = Detector(title="AGIPD")\n',
    );
    const res = await runCli(['reprocess', '1', '--mock'], { cwd: dir, env });
    assert.equal(res.code, 0, res.stderr);
    const { log } = submittedJob(res);
    assert.match(readFileSync(path.join(dir, log), 'utf8'), /Computed agipd\.heavy in/);
    const rows = rowsOf(dir);
    assert.equal(Number(rows.get('agipd.raw_sum')?.value), 3);
    assert.equal(Number(rows.get('agipd.heavy')?.value), 6);
    assert.equal(rows.get('agipd.where')?.value, 'r1-p1234-damnit');
    const h5 = await h5dump(path.join(dir, 'extracted_data', 'p1234_r1.h5'));
    assert.equal(h5.get('agipd.heavy/data')?.value, 6);
    assert.equal(h5.get('.reduced/agipd.raw_sum')?.value, 3);
  });

  test('a run without cluster variables submits no job', async () => {
    const dir = await database('from damnit_ctx import Variable\n\n@Variable(title="A")\ndef a(run):\n    return 1\n');
    const res = await runCli(['reprocess', '1', '--mock'], { cwd: dir, env });
    assert.equal(res.code, 0, res.stderr);
    assert.doesNotMatch(res.stderr, /Slurm/);
    assert.ok(!existsSync(path.join(dir, 'slurm_logs')));
  });

  test('--match selects the cluster variables too; an error in one is recorded like any other', async () => {
    const dir = await database(
      CONTEXT + '\n@Variable(title="Broken", cluster=True)\ndef broken(run):\n    return 1 / 0\n',
    );
    const res = await runCli(['reprocess', '1', '--mock', '--match', 'broken'], { cwd: dir, env });
    assert.equal(res.code, 0, res.stderr);
    submittedJob(res);
    const rows = rowsOf(dir);
    assert.deepEqual([...rows.keys()], ['broken']);
    assert.deepEqual(JSON.parse(rows.get('broken')!.attributes!), { error: 'division by zero', error_cls: 'ZeroDivisionError' });
  });

  test('a reservation wins over the partition', async () => {
    const reservation = await cluster.createReservation();
    try {
      const dir = await database(CONTEXT, [
        ['db-config', 'slurm_partition', 'other'],
        ['db-config', 'slurm_reservation', reservation],
      ]);
      const res = await runCli(['reprocess', '1', '--mock'], { cwd: dir, env });
      assert.equal(res.code, 0, res.stderr);
      const job = await cluster.showJob(submittedJob(res).jobId);
      assert.equal(job.Reservation, reservation);
      assert.equal(job.Partition, 'debug', 'no --partition: the reservation decides');
      assert.equal(Number(rowsOf(dir).get('heavy')?.value), 21);
    } finally {
      await cluster.deleteReservation(reservation);
    }
  });

  test('an expired reservation is reported as such; the local results are kept', async () => {
    const expired = await cluster.expiredReservation();
    const dir = await database(CONTEXT, [['db-config', 'slurm_reservation', expired]]);
    const res = await runCli(['reprocess', '1', '--mock'], { cwd: dir, env });
    assert.equal(res.code, 1);
    assert.match(res.stdout, /Processed 1 run: 0 ok, 1 failed/);
    assert.match(
      res.stderr,
      new RegExp(
        `r1 \\(p1234\\): FAILED in .*: 2 variables recorded, but the cluster variables heavy, job_name were not computed: ` +
          `Slurm refused the job: the reservation '${expired}' is invalid or has expired \\(.*\\)\\. ` +
          `Delete the setting with 'amore-proto db-config slurm_reservation --delete', or set a current reservation`,
      ),
    );
    const rows = rowsOf(dir);
    assert.deepEqual([...rows.keys()].sort(), ['local_value', 'local_where']);
  });

  test('a job that dies is reported with its state, exit code and log file', async () => {
    const dir = await database(
      'import os\nfrom damnit_ctx import Variable\n\n' +
        '@Variable(title="A")\ndef a(run):\n    return 1\n\n' +
        '@Variable(title="Dies", cluster=True)\ndef dies(run):\n    print("about to die", flush=True)\n    os._exit(3)\n',
    );
    const res = await runCli(['reprocess', '1', '--mock'], { cwd: dir, env });
    assert.equal(res.code, 1);
    const { jobId, log } = submittedJob(res);
    assert.match(
      res.stderr,
      new RegExp(
        `r1 \\(p1234\\): FAILED in .*: 1 variable recorded, but the cluster variables dies were not computed: ` +
          `Slurm job ${jobId} FAILED with exit code 3; its output is in ${log}$`,
        'm',
      ),
    );
    assert.match(readFileSync(path.join(dir, log), 'utf8'), /about to die/);
    assert.deepEqual([...rowsOf(dir).keys()], ['a']);
  });

  test('a cancelled job is reported as CANCELLED', async () => {
    const dir = await database(
      'import time\nfrom damnit_ctx import Variable\n\n' +
        '@Variable(title="Slow", cluster=True)\ndef slow(run):\n    time.sleep(300)\n    return 1\n',
    );
    const running = runCli(['reprocess', '1', '--mock'], { cwd: dir, env });
    // Cancel the job once it runs, as a user would with scancel.
    for (;;) {
      // Other test files share this cluster and run names: this job is the one working in `dir`.
      const queue = await execa('squeue', ['--noheader', '--name', 'r1-p1234-damnit', '--format=%i|%T|%Z'], { env });
      const line = queue.stdout.split('\n').find((l) => l.endsWith(`|RUNNING|${realpathSync(dir)}`));
      if (line) {
        await execa('scancel', [line.split('|')[0]!], { env });
        break;
      }
      await sleep(200);
    }
    const res = await running;
    assert.equal(res.code, 1);
    const { jobId, log } = submittedJob(res);
    assert.match(res.stderr, new RegExp(`the cluster variables slow were not computed: Slurm job ${jobId} was CANCELLED; its output is in ${log}$`, 'm'));
  });
});

describe('cluster variables without Slurm', () => {
  // Node and Python are named by their full paths: an empty PATH has no sbatch.
  const noSlurm = { PATH: path.join(tmp.dir, 'empty-bin') };
  before(() => mkdirSync(noSlurm.PATH));

  test('fail with a clear error naming the setting that runs them here; local results are kept', async () => {
    const dir = await database(CONTEXT);
    const res = await runCli(['reprocess', '1', '--mock'], { cwd: dir, env: noSlurm });
    assert.equal(res.code, 1);
    assert.match(
      res.stderr,
      /r1 \(p1234\): FAILED in .*: 2 variables recorded, but the cluster variables heavy, job_name were not computed: Slurm is not available on this machine \('sbatch' was not found on PATH\): cluster variables need a machine with Slurm's client commands \(sbatch, squeue, scontrol\); to run cluster variables on this machine instead, set 'amore-proto db-config --num cluster_fallback_local 1'$/m,
    );
    assert.deepEqual([...rowsOf(dir).keys()].sort(), ['local_value', 'local_where']);
  });

  test('run on this machine with cluster_fallback_local', async () => {
    const dir = await database(CONTEXT, [['db-config', '--num', 'cluster_fallback_local', '1']]);
    const res = await runCli(['reprocess', '1', '--mock'], { cwd: dir, env: noSlurm });
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stderr, /r1 \(p1234\): done in .*: 4 variables; cluster variables: here \(no Slurm\)/);
    const rows = rowsOf(dir);
    assert.equal(Number(rows.get('heavy')?.value), 21);
    assert.equal(rows.get('job_name')?.value, 'here');
  });
});

import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { DatabaseDir } from '../../src/database-dir.js';
import {
  DEFAULT_SLURM_TIME,
  SlurmError,
  SlurmUnavailableError,
  cancelJob,
  parseSacct,
  parseScontrolJobs,
  sbatchArgs,
  slurmArrayJobName,
  slurmArrayLogPattern,
  slurmJobName,
  slurmLogFile,
  slurmLogPattern,
  submitJob,
  waitForJob,
  type JobSpec,
} from '../../src/executors/slurm.js';
import { makeTempDir } from '../helpers/cli.js';
import { startSlurmCluster, type SlurmCluster } from '../helpers/slurm-cluster.js';

const PROPOSAL = 1234;

/** Arguments a shell would mangle: each must reach the job exactly as written. */
const TRICKY_ARGS = ['two words', '$(touch pwned)', '`touch pwned2`', '*', "it's \"quoted\"", 'semi;colon', '', 'new\nline'];

/** A node program that prints its arguments as JSON on stdout and a line on stderr. */
const ECHO_ARGV = [process.execPath, '-e', 'console.log(JSON.stringify(process.argv.slice(1))); console.error("to stderr")'];

describe('sbatch arguments', () => {
  const base: JobSpec = { jobName: 'r7-p1234-damnit', logPath: '/db/slurm_logs/r7-p1234-%j.out', command: ['/usr/bin/python3', '-c', 'pass'] };

  test('name, log with stdout and stderr appended, default time, command after the job script', () => {
    const args = sbatchArgs(base, '/tmp/job.sh');
    assert.deepEqual(args, [
      '--parsable',
      '--job-name',
      'r7-p1234-damnit',
      '--output',
      '/db/slurm_logs/r7-p1234-%j.out',
      '--open-mode=append',
      '--time',
      DEFAULT_SLURM_TIME,
      '--',
      '/tmp/job.sh',
      '/usr/bin/python3',
      '-c',
      'pass',
    ]);
    assert.ok(!args.includes('--error'), 'stderr goes to the --output file');
  });

  test('the reservation wins over the partition; neither leaves the choice to Slurm', () => {
    const both = sbatchArgs({ ...base, partition: 'allgpu', reservation: 'upex_001234' }, '/j.sh');
    assert.ok(both.includes('--reservation') && both[both.indexOf('--reservation') + 1] === 'upex_001234');
    assert.ok(!both.includes('--partition'));
    const partition = sbatchArgs({ ...base, partition: 'allgpu' }, '/j.sh');
    assert.equal(partition[partition.indexOf('--partition') + 1], 'allgpu');
    const neither = sbatchArgs(base, '/j.sh');
    assert.ok(!neither.includes('--partition') && !neither.includes('--reservation'));
  });

  test('slurm_time, array with a concurrency limit, working directory', () => {
    const args = sbatchArgs({ ...base, time: '00:30:00', array: { indices: '0-19', maxConcurrent: 4 }, cwd: '/db' }, '/j.sh');
    assert.equal(args[args.indexOf('--time') + 1], '00:30:00');
    assert.equal(args[args.indexOf('--array') + 1], '0-19%4');
    assert.equal(args[args.indexOf('--chdir') + 1], '/db');
  });

  test('settings that cannot be one Slurm argument are refused before submitting', () => {
    assert.throws(() => sbatchArgs({ ...base, partition: 'a b' }, '/j.sh'), /invalid slurm_partition 'a b'/);
    assert.throws(() => sbatchArgs({ ...base, array: { indices: '0-3;rm' } }, '/j.sh'), /invalid array indices/);
    assert.throws(() => sbatchArgs({ ...base, array: { indices: '0-3', maxConcurrent: 0 } }, '/j.sh'), /positive whole number/);
    assert.throws(() => sbatchArgs({ ...base, command: [] }, '/j.sh'), /needs a command/);
  });

  test('job names and log paths; % in a directory is escaped from Slurm patterns', () => {
    assert.equal(slurmJobName(42, 1234), 'r42-p1234-damnit');
    assert.equal(slurmArrayJobName(1234), 'p1234-damnit');
    const db = new DatabaseDir('/data/50%done/amore');
    assert.equal(slurmLogPattern(db, 42, 1234), '/data/50%%done/amore/slurm_logs/r42-p1234-%j.out');
    assert.equal(slurmArrayLogPattern(db, 1234), '/data/50%%done/amore/slurm_logs/r%a-p1234-%j.out');
    assert.equal(slurmLogFile(db, 42, 1234, '77'), '/data/50%done/amore/slurm_logs/r42-p1234-77.out');
    assert.throws(() => slurmLogPattern(new DatabaseDir('/data/back\\slash'), 1, 1), SlurmError);
  });
});

describe('Slurm output parsing', () => {
  test('scontrol records: array tasks by their array id, commands with line breaks and look-alike fields', () => {
    const out = [
      'JobId=8 ArrayJobId=7 ArrayTaskId=0 JobName=p1-damnit UserId=root(0) JobState=COMPLETED Reason=None Dependency=(null) ExitCode=0:0 Command=/j.sh echo JobState=FAILED',
      'JobId=9 ArrayJobId=7 ArrayTaskId=1 JobName=p1-damnit JobState=FAILED Reason=NonZeroExitCode ExitCode=2:0 Command=/j.sh a',
      'JobId=12 should not start a record',
      'JobId=10 JobName=r1-p1-damnit JobState=CANCELLED Reason=None ExitCode=0:15 Command=/j.sh',
    ].join('\n');
    assert.deepEqual(parseScontrolJobs(out), [
      { jobId: '7_0', state: 'COMPLETED', exitCode: 0, signal: null, reason: null },
      { jobId: '7_1', state: 'FAILED', exitCode: 2, signal: null, reason: 'NonZeroExitCode' },
      { jobId: '10', state: 'CANCELLED', exitCode: 0, signal: 15, reason: null },
    ]);
  });

  test('sacct lines (the accounting database is not available on the test cluster)', () => {
    assert.deepEqual(parseSacct('7_0|COMPLETED|0:0\n8|CANCELLED by 0|0:15\n9|TIMEOUT|0:0\n'), [
      { jobId: '7_0', state: 'COMPLETED', exitCode: 0, signal: null, reason: null },
      { jobId: '8', state: 'CANCELLED', exitCode: 0, signal: 15, reason: null },
      { jobId: '9', state: 'TIMEOUT', exitCode: 0, signal: null, reason: null },
    ]);
  });
});

test('without sbatch on PATH, submitting says Slurm is unavailable', async () => {
  const { dir, cleanup } = makeTempDir();
  try {
    const spec: JobSpec = { jobName: 'r1-p1-damnit', logPath: path.join(dir, '%j.out'), command: ['/bin/true'] };
    await assert.rejects(submitJob(spec, { env: { PATH: dir } }), (err: unknown) => {
      assert.ok(err instanceof SlurmUnavailableError);
      assert.match(err.message, /Slurm is not available on this machine \('sbatch' was not found on PATH\)/);
      return true;
    });
  } finally {
    cleanup();
  }
});

describe('on a real single-node Slurm', () => {
  let cluster: SlurmCluster;
  let temp: { dir: string; cleanup: () => void };
  let db: DatabaseDir;
  const poll = { pollMs: 200 };

  before(async () => {
    cluster = await startSlurmCluster();
    temp = makeTempDir();
    db = new DatabaseDir(temp.dir);
    mkdirSync(db.slurmLogsDir);
  });
  after(async () => {
    temp?.cleanup();
    await cluster?.stop();
  });

  const job = (run: number, command: string[], extra: Partial<JobSpec> = {}): JobSpec => ({
    jobName: slurmJobName(run, PROPOSAL),
    logPath: slurmLogPattern(db, run, PROPOSAL),
    command,
    cwd: db.root,
    ...extra,
  });

  test('a job completes with its name, its log (stdout and stderr) and its arguments intact', async () => {
    const { jobId } = await submitJob(job(1, [...ECHO_ARGV, ...TRICKY_ARGS]), { env: cluster.env });
    const outcome = await waitForJob(jobId, { env: cluster.env, ...poll });
    assert.deepEqual(outcome, { jobId, state: 'COMPLETED', exitCode: 0, signal: null, reason: null });

    const logFile = slurmLogFile(db, 1, PROPOSAL, jobId);
    assert.equal(logFile, path.join(db.root, 'slurm_logs', `r1-p${PROPOSAL}-${jobId}.out`));
    const lines = readFileSync(logFile, 'utf8').split('\n');
    assert.deepEqual(JSON.parse(lines[0]!), TRICKY_ARGS);
    assert.ok(lines.includes('to stderr'));
    assert.ok(!existsSync(path.join(db.root, 'pwned')) && !existsSync(path.join(db.root, 'pwned2')));

    const recorded = await cluster.showJob(jobId);
    assert.equal(recorded.JobName, `r1-p${PROPOSAL}-damnit`);
    assert.equal(recorded.StdOut, logFile);
    assert.equal(recorded.StdErr, logFile);
    assert.equal(recorded.TimeLimit, DEFAULT_SLURM_TIME);
    assert.equal(recorded.Partition, 'debug', 'the default partition when none is set');
    assert.equal(recorded.WorkDir, db.root);
  });

  test('a failing job is FAILED with its exit code, and its output is in the log', async () => {
    const { jobId } = await submitJob(job(2, ['/bin/sh', '-c', 'echo "about to fail" >&2; exit 3']), { env: cluster.env });
    const outcome = await waitForJob(jobId, { env: cluster.env, ...poll });
    assert.deepEqual(outcome, { jobId, state: 'FAILED', exitCode: 3, signal: null, reason: 'NonZeroExitCode' });
    assert.match(readFileSync(slurmLogFile(db, 2, PROPOSAL, jobId), 'utf8'), /about to fail/);
  });

  test('two jobs for the same run write separate logs, named by job id', async () => {
    const first = await submitJob(job(3, ['/bin/echo', 'first']), { env: cluster.env });
    const second = await submitJob(job(3, ['/bin/echo', 'second']), { env: cluster.env });
    await waitForJob(first.jobId, { env: cluster.env, ...poll });
    await waitForJob(second.jobId, { env: cluster.env, ...poll });
    assert.equal(readFileSync(slurmLogFile(db, 3, PROPOSAL, first.jobId), 'utf8'), 'first\n');
    assert.equal(readFileSync(slurmLogFile(db, 3, PROPOSAL, second.jobId), 'utf8'), 'second\n');
  });

  test('slurm_partition and slurm_time reach Slurm', async () => {
    const { jobId } = await submitJob(job(4, ['/bin/true'], { partition: 'other', time: '00:05:00' }), { env: cluster.env });
    assert.equal((await waitForJob(jobId, { env: cluster.env, ...poll })).state, 'COMPLETED');
    const recorded = await cluster.showJob(jobId);
    assert.equal(recorded.Partition, 'other');
    assert.equal(recorded.TimeLimit, '00:05:00');
  });

  test('a reservation wins over the partition', async () => {
    const reservation = await cluster.createReservation();
    try {
      const { jobId } = await submitJob(job(5, ['/bin/true'], { partition: 'other', reservation }), { env: cluster.env });
      assert.equal((await waitForJob(jobId, { env: cluster.env, ...poll })).state, 'COMPLETED');
      const recorded = await cluster.showJob(jobId);
      assert.equal(recorded.Reservation, reservation);
      assert.equal(recorded.Partition, 'debug', 'no --partition was given, so the default one');
    } finally {
      await cluster.deleteReservation(reservation);
    }
  });

  test('an unknown or expired reservation is refused with a message that says so and how to fix it', async () => {
    const expired = await cluster.expiredReservation();
    for (const reservation of ['upex_no_such_reservation', expired]) {
      await assert.rejects(submitJob(job(6, ['/bin/true'], { reservation }), { env: cluster.env }), (err: unknown) => {
        assert.ok(err instanceof SlurmError);
        assert.match(err.message, new RegExp(`the reservation '${reservation}' is invalid or has expired \\(.*reservation`));
        assert.match(err.message, /'amore-proto db-config slurm_reservation --delete'/);
        assert.doesNotMatch(err.message, /\n/);
        return true;
      });
    }
  });

  test('an unknown partition is refused naming the setting', async () => {
    await assert.rejects(submitJob(job(7, ['/bin/true'], { partition: 'nosuchpartition' }), { env: cluster.env }), /the partition 'nosuchpartition' is invalid .*slurm_partition --delete/);
  });

  test('a time limit Slurm does not accept is refused naming slurm_time', async () => {
    await assert.rejects(submitJob(job(7, ['/bin/true'], { time: 'soon' }), { env: cluster.env }), /the time limit 'soon' was not accepted \(Invalid --time specification\)\. Set another with 'amore-proto db-config slurm_time HH:MM:SS'/);
  });

  test('a cancelled job is CANCELLED; giving up waiting leaves the job alone', async () => {
    const { jobId } = await submitJob(job(8, ['/bin/sleep', '300']), { env: cluster.env });
    while ((await cluster.showJob(jobId)).JobState !== 'RUNNING') await sleep(100);
    const gaveUp = new AbortController();
    const waiting = waitForJob(jobId, { env: cluster.env, ...poll, signal: gaveUp.signal });
    gaveUp.abort(new Error('no longer interested'));
    await assert.rejects(waiting, /no longer interested/);
    assert.equal((await cluster.showJob(jobId)).JobState, 'RUNNING');
    await cancelJob(jobId, { env: cluster.env });
    const outcome = await waitForJob(jobId, { env: cluster.env, ...poll });
    assert.equal(outcome.state, 'CANCELLED');
  });

  test('a job Slurm has never heard of ends as UNKNOWN', async () => {
    const outcome = await waitForJob('987654', { env: cluster.env, pollMs: 50 });
    assert.equal(outcome.state, 'UNKNOWN');
  });

  test('an array of 20 runs never has more than the concurrency limit running at once', async () => {
    const runs = Array.from({ length: 20 }, (_, i) => 101 + i);
    const limit = 4;
    const timeline = path.join(db.root, 'timeline.txt');
    // Each task logs to r<run>-p<P>-<jobid>.out, its run number being its array index.
    const { jobId } = await submitJob(
      {
        jobName: slurmArrayJobName(PROPOSAL),
        logPath: slurmArrayLogPattern(db, PROPOSAL),
        array: { indices: `${runs[0]}-${runs.at(-1)}`, maxConcurrent: limit },
        command: [
          '/bin/sh',
          '-c',
          'echo "start $(date +%s%N)" >> "$0"; echo "run $SLURM_ARRAY_TASK_ID"; sleep 1; echo "end $(date +%s%N)" >> "$0"',
          timeline,
        ],
        cwd: db.root,
      },
      { env: cluster.env },
    );
    const outcome = await waitForJob(jobId, { env: cluster.env, ...poll });
    assert.equal(outcome.state, 'COMPLETED');
    const tasks = outcome.tasks ?? [];
    assert.deepEqual(tasks.map((t) => t.jobId), runs.map((r) => `${jobId}_${r}`));
    assert.ok(tasks.every((t) => t.state === 'COMPLETED' && t.exitCode === 0));

    // Sweep the start and end events in time order; ends sort before starts at the same instant.
    const events = readFileSync(timeline, 'utf8')
      .trim()
      .split('\n')
      .map((line) => {
        const [kind, at] = line.split(' ');
        return { delta: kind === 'start' ? 1 : -1, at: BigInt(at!) };
      })
      .sort((a, b) => (a.at === b.at ? a.delta - b.delta : a.at < b.at ? -1 : 1));
    assert.equal(events.length, 40);
    let running = 0;
    let most = 0;
    for (const event of events) {
      running += event.delta;
      most = Math.max(most, running);
    }
    assert.ok(most <= limit, `${most} tasks ran at once, more than the limit of ${limit}`);
    assert.ok(most > 1, 'tasks ran side by side: the limit, not the node, was what held them back');

    const logs = readdirSync(db.slurmLogsDir).filter((f) => f.endsWith('.out') && /^r(1[01]\d|120)-/.test(f));
    assert.equal(logs.length, 20);
    for (const run of runs) {
      const log = logs.find((f) => f.startsWith(`r${run}-p${PROPOSAL}-`));
      assert.ok(log, `no log for run ${run}`);
      assert.equal(readFileSync(path.join(db.slurmLogsDir, log), 'utf8'), `run ${run}\n`);
    }
  });
});

// `reprocess --cluster`: runs fanned out as one Slurm array job, on a real Slurm.
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { execa } from 'execa';
import { makeTempDir, runCli } from '../helpers/cli.js';
import { CLI_PATH, TEST_PYTHON } from '../helpers/paths.js';
import { startSlurmCluster, type SlurmCluster } from '../helpers/slurm-cluster.js';
import { makeSampleProposal } from '../helpers/python.js';

const tmp = makeTempDir('damnit-reprocess-cluster-');
after(() => tmp.cleanup());

/** A proposal with `runs` sample runs of 5 trains, its database at the conventional place. */
async function proposal(name: string, runs: number, context: string, concurrentJobs: number): Promise<string> {
  const root = path.join(tmp.dir, name);
  await makeSampleProposal(root, ['--runs', String(runs), '--trains', '5']);
  const db = path.join(root, 'usr', 'Shared', 'amore');
  mkdirSync(db, { recursive: true });
  writeFileSync(path.join(db, 'context.py'), context);
  for (const args of [
    ['proposal', '1234'],
    ['db-config', 'context_python', TEST_PYTHON],
    ['db-config', '--num', 'concurrent_jobs', String(concurrentJobs)],
  ]) {
    const res = await runCli(args, { cwd: db });
    assert.equal(res.code, 0, res.stderr);
  }
  return db;
}

function query<T>(db: string, sql: string): T[] {
  const conn = new Database(path.join(db, 'runs.sqlite'), { readonly: true });
  try {
    return conn.prepare(sql).all() as T[];
  } finally {
    conn.close();
  }
}

/** Largest number of [start, end] intervals that overlap at one instant. */
function mostAtOnce(intervals: [number, number][]): number {
  const events = intervals
    .flatMap(([start, end]) => [{ at: start, delta: 1 }, { at: end, delta: -1 }])
    .sort((a, b) => a.at - b.at || a.delta - b.delta);
  let now = 0;
  let most = 0;
  for (const event of events) {
    now += event.delta;
    most = Math.max(most, now);
  }
  return most;
}

const TIMED_CONTEXT = `import os, time
from damnit_ctx import Variable

@Variable(title="Started")
def started(run):
    begin = time.time()
    time.sleep(1)
    return begin

@Variable(title="Ended")
def ended(run, s: "var#started"):
    return time.time()

@Variable(title="Task")
def task(run, n: "meta#run_number"):
    return "%s/%s" % (os.environ.get("SLURM_ARRAY_TASK_ID"), n)

@Variable(title="Trains", cluster=True)
def trains(run):
    return len(run.train_ids)
`;

describe('reprocess --cluster on a real Slurm', () => {
  let cluster: SlurmCluster;
  before(async () => {
    cluster = await startSlurmCluster();
  });
  after(async () => {
    await cluster?.stop();
  });

  test('20 runs as one array job, at most concurrent_jobs at once, each recorded as its task ends', async () => {
    const db = await proposal('twenty', 20, TIMED_CONTEXT, 3);
    const runs = Array.from({ length: 20 }, (_, i) => String(i + 1));
    const cli = execa(process.execPath, [CLI_PATH, 'reprocess', ...runs, '--cluster'], {
      cwd: db,
      env: { ...cluster.env, NO_COLOR: '1' },
      reject: false,
    });
    // How many runs the table holds, looked at while the array runs.
    const seen = new Set<number>();
    while (cli.exitCode === null) {
      const [row] = query<{ n: number }>(db, "SELECT count(*) AS n FROM run_variables WHERE name = 'ended'");
      seen.add(row?.n ?? 0);
      await sleep(100);
    }
    const res = await cli;
    assert.equal(res.exitCode, 0, res.stderr);
    const submitted = /Submitted Slurm array job (\d+) \(p1234-damnit\): 20 runs, at most 3 at once/.exec(res.stdout);
    assert.ok(submitted, res.stdout);
    const arrayId = submitted[1]!;
    assert.match(res.stdout, /Processed 20 runs: 20 ok, 0 failed/);
    assert.ok([...seen].some((n) => n > 0 && n < 20), `runs were recorded while others still ran (seen: ${[...seen].sort((a, b) => a - b).join(', ')})`);

    const rows = query<{ run: number; name: string; value: number | string }>(db, 'SELECT run, name, value FROM run_variables');
    const value = (run: number, name: string) => rows.find((r) => r.run === run && r.name === name)?.value;
    const intervals: [number, number][] = [];
    for (let run = 1; run <= 20; run++) {
      assert.equal(value(run, 'task'), `${run}/${run}`, 'the array index is the run number');
      assert.equal(Number(value(run, 'trains')), 5, 'cluster variables run in the task, from the run files');
      intervals.push([Number(value(run, 'started')), Number(value(run, 'ended'))]);
      assert.match(res.stderr, new RegExp(`r${run} \\(p1234\\): done in .*: 4 variables \\(Slurm job ${arrayId}_${run}; output in slurm_logs/r${run}-p1234-\\d+\\.out\\)`));
    }
    const most = mostAtOnce(intervals);
    assert.ok(most <= 3, `${most} runs were processed at once, more than concurrent_jobs = 3`);
    assert.ok(most > 1, 'runs ran side by side');
    assert.equal((await cluster.showJob(`${arrayId}_1`)).ArrayTaskThrottle, '3');
    assert.doesNotMatch(res.stderr, /cluster variables submitted/, 'no extra job for cluster variables');

    const logs = readdirSync(path.join(db, 'slurm_logs')).filter((f) => f.endsWith('.out'));
    assert.equal(logs.length, 20);
    for (let run = 1; run <= 20; run++) {
      const log = logs.find((f) => f.startsWith(`r${run}-p1234-`));
      assert.ok(log, `no log for run ${run}`);
      assert.match(readFileSync(path.join(db, 'slurm_logs', log), 'utf8'), /Computed trains in/);
    }
  });

  test('a task that dies and a run that cannot be opened are reported; the other runs are recorded', async () => {
    const db = await proposal(
      'failing',
      2,
      'import os\nfrom damnit_ctx import Variable\n\n' +
        '@Variable(title="Value")\ndef value(run, n: "meta#run_number"):\n' +
        '    if n == 2:\n        print("run 2 goes down", flush=True)\n        os._exit(5)\n    return n * 10\n',
      4,
    );
    // Run 3 exists, but holds no data files.
    mkdirSync(path.join(db, '..', '..', '..', 'raw', 'r0003'));
    const res = await runCli(['reprocess', '1', '2', '3', '--cluster'], { cwd: db, env: cluster.env });
    assert.equal(res.code, 1);
    assert.match(res.stdout, /Processed 3 runs: 1 ok, 2 failed/);
    const arrayId = /Submitted Slurm array job (\d+)/.exec(res.stdout)?.[1];
    const died = new RegExp(`r2 \\(p1234\\): FAILED in .*: Slurm job ${arrayId}_2 FAILED with exit code 5; its output is in (slurm_logs/r2-p1234-\\d+\\.out)$`, 'm').exec(res.stderr);
    assert.ok(died, res.stderr);
    assert.match(readFileSync(path.join(db, died[1]!), 'utf8'), /run 2 goes down/);
    assert.match(res.stderr, new RegExp(`r3 \\(p1234\\): FAILED in .*: Run 3 of proposal 1234 cannot be opened from .*\\(Slurm job ${arrayId}_3; output in slurm_logs/r3-p1234-\\d+\\.out\\)$`, 'm'));
    const rows = query<{ run: number; value: number }>(db, "SELECT run, value FROM run_variables WHERE name = 'value'");
    assert.deepEqual(rows.map((r) => [r.run, Number(r.value)]), [[1, 10]]);
  });

  test('Ctrl-C cancels the array job; runs already recorded stay', async () => {
    const db = await proposal(
      'interrupted',
      2,
      'import time\nfrom damnit_ctx import Variable\n\n' +
        '@Variable(title="Slow")\ndef slow(run, n: "meta#run_number"):\n    if n == 2:\n        time.sleep(300)\n    return n\n',
      2,
    );
    const cli = execa(process.execPath, [CLI_PATH, 'reprocess', '1', '2', '--cluster'], {
      cwd: db,
      env: { ...cluster.env, NO_COLOR: '1' },
      reject: false,
      // Cancelling the array takes longer than execa's 5 s grace on a loaded machine.
      forceKillAfterDelay: false,
    });
    // Once run 1 is recorded, run 2 is sleeping in its task.
    while (query<{ n: number }>(db, "SELECT count(*) AS n FROM run_variables WHERE name = 'slow'")[0]?.n !== 1) {
      await sleep(100);
    }
    cli.kill('SIGINT');
    const res = await cli;
    assert.equal(res.exitCode, 130);
    const arrayId = /Submitted Slurm array job (\d+)/.exec(String(res.stdout))?.[1];
    assert.ok(arrayId, String(res.stdout));
    assert.match(String(res.stderr), new RegExp(`^Error: interrupted \\(SIGINT\\): cancelled Slurm array job ${arrayId}; runs that had finished are recorded$`, 'm'));
    assert.equal((await cluster.showJob(`${arrayId}_2`)).JobState, 'CANCELLED');
    assert.deepEqual(query<{ run: number }>(db, "SELECT run FROM run_variables WHERE name = 'slow'"), [{ run: 1 }]);
  });
});

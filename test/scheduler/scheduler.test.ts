import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { DatabaseDir } from '../../src/database-dir.js';
import { openDatabase, type DamnitDb } from '../../src/db/database.js';
import type { EventKind, RunEvent } from '../../src/listener/events.js';
import { JobStore, type Job } from '../../src/scheduler/job-store.js';
import { Scheduler, type JobHandler, type JobResult } from '../../src/scheduler/scheduler.js';
import { makeTempDir } from '../helpers/cli.js';
import { eventually, PROPOSAL } from '../listener/helpers.js';

const tmp = makeTempDir('damnit-scheduler-');
after(() => tmp.cleanup());

let dbCount = 0;
function freshDb(): DamnitDb {
  dbCount += 1;
  const dir = new DatabaseDir(path.join(tmp.dir, `db${dbCount}`));
  mkdirSync(dir.root);
  return openDatabase(dir, { create: true });
}

function event(run: number, kind: EventKind, proposal = PROPOSAL): RunEvent {
  return { proposal, run, kind, source: 'test', time: Date.now() / 1000 };
}

/** A handler whose jobs end when the test says so, recording what ran and what overlapped. */
class Gate {
  readonly started: string[] = [];
  readonly finished: string[] = [];
  private readonly release = new Map<string, () => void>();
  running = 0;
  maxRunning = 0;
  overlaps: string[] = [];
  private readonly runsNow = new Set<number>();

  constructor(private readonly autoRelease = false) {}

  readonly handler: JobHandler = async (job: Job) => {
    const name = `r${job.run} ${job.kind}`;
    if (this.runsNow.has(job.run)) this.overlaps.push(name);
    this.runsNow.add(job.run);
    this.started.push(name);
    this.running += 1;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    if (!this.autoRelease) await new Promise<void>((resolve) => this.release.set(name, resolve));
    else await new Promise((resolve) => setImmediate(resolve));
    this.running -= 1;
    this.runsNow.delete(job.run);
    this.finished.push(name);
    return { ok: true, summary: 'fine' };
  };

  async waitStarted(name: string): Promise<void> {
    await eventually(`${name} to start`, () => this.release.has(name));
  }

  finish(name: string): void {
    const release = this.release.get(name);
    assert.ok(release, `${name} is not running`);
    this.release.delete(name);
    release();
  }
}

function schedulerFor(db: DamnitDb, handler: JobHandler, concurrency: number): Scheduler {
  return new Scheduler({ store: new JobStore(db.connection), handler, concurrency, maxAttempts: 3 });
}

function states(db: DamnitDb): Record<string, string> {
  const rows = db.connection.prepare('SELECT run, kind, state FROM damnit_ts_jobs').all() as { run: number; kind: string; state: string }[];
  return Object.fromEntries(rows.map((r) => [`r${r.run} ${r.kind}`, r.state]));
}

describe('scheduler', () => {
  test('identical events merge while pending or running; after that they are reprocessing', async () => {
    const db = freshDb();
    const gate = new Gate();
    const scheduler = schedulerFor(db, gate.handler, 1);
    assert.equal(scheduler.submit(event(1, 'raw')).outcome, 'queued');
    await gate.waitStarted('r1 raw');
    assert.equal(scheduler.submit(event(1, 'raw')).outcome, 'merged', 'running');
    assert.equal(scheduler.submit(event(2, 'raw')).outcome, 'queued');
    assert.equal(scheduler.submit(event(2, 'raw')).outcome, 'merged', 'pending');
    gate.finish('r1 raw');
    await gate.waitStarted('r2 raw');
    gate.finish('r2 raw');
    await scheduler.idle();
    assert.deepEqual(gate.started, ['r1 raw', 'r2 raw']);

    const again = scheduler.submit(event(1, 'raw'));
    assert.deepEqual(again, { outcome: 'requeued', priority: 'reprocess' });
    await gate.waitStarted('r1 raw');
    gate.finish('r1 raw');
    await scheduler.idle();
    assert.deepEqual(gate.started, ['r1 raw', 'r2 raw', 'r1 raw']);
    db.close();
  });

  test('the two events of a run never overlap, raw goes first, and other runs go on meanwhile', async () => {
    const db = freshDb();
    const gate = new Gate();
    const scheduler = schedulerFor(db, gate.handler, 2);
    scheduler.submit(event(1, 'proc'));
    await gate.waitStarted('r1 proc');
    // Raw data of run 1 arrives while its proc job runs; then proc again, and run 2.
    scheduler.submit(event(1, 'raw'));
    scheduler.submit(event(2, 'proc'));
    scheduler.submit(event(2, 'raw'));
    await gate.waitStarted('r2 raw');
    assert.deepEqual(gate.started, ['r1 proc', 'r2 raw'], 'r1 raw waits for r1 proc; r2 raw goes before r2 proc');
    gate.finish('r1 proc');
    await gate.waitStarted('r1 raw');
    gate.finish('r2 raw');
    await gate.waitStarted('r2 proc');
    gate.finish('r1 raw');
    gate.finish('r2 proc');
    await scheduler.idle();
    assert.deepEqual(gate.overlaps, []);
    assert.equal(gate.maxRunning, 2);
    db.close();
  });

  test('new runs go before reprocessing', async () => {
    const db = freshDb();
    const gate = new Gate();
    const scheduler = schedulerFor(db, gate.handler, 1);
    for (const run of [1, 2, 3]) scheduler.submit(event(run, 'raw'));
    for (const run of [1, 2, 3]) {
      await gate.waitStarted(`r${run} raw`);
      gate.finish(`r${run} raw`);
    }
    await scheduler.idle();
    gate.started.length = 0;

    scheduler.submit(event(9, 'raw'));
    await gate.waitStarted('r9 raw');
    // While r9 runs: runs 1 and 2 again (reprocessing), then new runs 4 and 5.
    for (const run of [1, 2]) assert.equal(scheduler.submit(event(run, 'raw')).priority, 'reprocess');
    for (const run of [4, 5]) assert.equal(scheduler.submit(event(run, 'raw')).priority, 'new');
    gate.finish('r9 raw');
    for (const name of ['r4 raw', 'r5 raw', 'r1 raw', 'r2 raw']) {
      await gate.waitStarted(name);
      gate.finish(name);
    }
    await scheduler.idle();
    assert.deepEqual(gate.started, ['r9 raw', 'r4 raw', 'r5 raw', 'r1 raw', 'r2 raw']);
    db.close();
  });

  test('a burst of 500 events with many repeats: each run and kind once, never more than the concurrency', async () => {
    const db = freshDb();
    const gate = new Gate(true);
    const scheduler = schedulerFor(db, gate.handler, 3);
    const expected = new Set<string>();
    for (let i = 0; i < 500; i++) {
      const run = 1 + ((i * 7) % 60);
      const kind: EventKind = i % 3 === 0 ? 'proc' : 'raw';
      expected.add(`r${run} ${kind}`);
      scheduler.submit(event(run, kind));
    }
    await scheduler.idle();
    assert.equal(gate.started.length, expected.size);
    assert.deepEqual(new Set(gate.started), expected);
    assert.deepEqual(gate.overlaps, []);
    assert.ok(gate.maxRunning <= 3);
    for (const run of new Set(gate.started.map((n) => n.split(' ')[0]))) {
      const kinds = gate.started.filter((n) => n.startsWith(`${run} `));
      if (kinds.length === 2) assert.deepEqual(kinds, [`${run} raw`, `${run} proc`], `raw before proc for ${run}`);
    }
    assert.ok(Object.values(states(db)).every((s) => s === 'done'));
    db.close();
  });

  test('after a crash: interrupted and pending work is resumed, finished work is not repeated', async () => {
    const db = freshDb();
    const first = new Gate();
    const crashed = schedulerFor(db, first.handler, 1);
    crashed.submit(event(1, 'raw'));
    await first.waitStarted('r1 raw');
    first.finish('r1 raw');
    await crashed.idle();
    crashed.submit(event(2, 'raw'));
    crashed.submit(event(3, 'raw'));
    await first.waitStarted('r2 raw');
    // The process dies here: r2 is running, r3 waits. A new scheduler on the same database:
    crashed.stop();

    const second = new Gate(true);
    const restarted = schedulerFor(db, second.handler, 1);
    const recovered = restarted.recover();
    assert.deepEqual(recovered.resumed.map((j) => `r${j.run} ${j.kind}`), ['r2 raw']);
    assert.equal(restarted.schedulePending(), 2);
    await restarted.idle();
    assert.deepEqual(second.started, ['r2 raw', 'r3 raw']);
    assert.deepEqual(states(db), { 'r1 raw': 'done', 'r2 raw': 'done', 'r3 raw': 'done' });
    db.close();
  });

  test('a run that was interrupted three times is given up', async () => {
    const db = freshDb();
    const store = new JobStore(db.connection);
    store.submit(event(7, 'raw'));
    for (let attempt = 1; attempt <= 3; attempt++) {
      const resumed = store.resumeInterrupted(3);
      assert.equal(resumed.abandoned.length, 0);
      assert.ok(store.claimNext(PROPOSAL, 7), `claimed on attempt ${attempt}`);
    }
    const last = store.resumeInterrupted(3);
    assert.deepEqual(last.abandoned.map((j) => j.run), [7]);
    assert.equal(store.counts().failed, 1);
    assert.equal(store.claimNext(PROPOSAL, 7), null);
    db.close();
  });

  test('a failed job is recorded with its reason and does not stop the others', async () => {
    const db = freshDb();
    const scheduler = schedulerFor(
      db,
      async (job) => (job.run === 2 ? { ok: false, reason: 'context.py failed to load' } : { ok: true, summary: '' }),
      2,
    );
    for (const run of [1, 2, 3]) scheduler.submit(event(run, 'raw'));
    await scheduler.idle();
    const reason = db.connection.prepare("SELECT reason FROM damnit_ts_jobs WHERE run = 2").get() as { reason: string };
    assert.equal(reason.reason, 'context.py failed to load');
    assert.deepEqual(scheduler.store.counts(), { pending: 0, running: 0, done: 2, failed: 1, adopted: 0 });
    db.close();
  });

  test('a job waiting on a Slurm job frees its slot, but its run stays busy until the job ends', async () => {
    const db = freshDb();
    let endClusterJob: (result: JobResult) => void = () => undefined;
    const clusterJob = new Promise<JobResult>((resolve) => (endClusterJob = resolve));
    const ran: string[] = [];
    const scheduler = schedulerFor(
      db,
      async (job) => {
        ran.push(`r${job.run} ${job.kind}`);
        return job.run === 1 && job.kind === 'raw'
          ? { ok: true, summary: 'local part', remaining: clusterJob }
          : { ok: true, summary: 'all here' };
      },
      1,
    );
    scheduler.submit(event(1, 'raw'));
    scheduler.submit(event(1, 'proc'));
    scheduler.submit(event(2, 'raw'));
    // With one slot, run 2 can only go while run 1's cluster job is still out.
    await eventually('run 2 to be done', () => states(db)['r2 raw'] === 'done');
    assert.deepEqual(ran, ['r1 raw', 'r2 raw'], "run 1's proc job waits for its raw job's cluster part");
    assert.equal(states(db)['r1 raw'], 'running');
    assert.deepEqual(scheduler.activity, { running: 1, waiting: 0 });

    endClusterJob({ ok: false, reason: 'Slurm job 7 FAILED' });
    await scheduler.idle();
    assert.deepEqual(ran, ['r1 raw', 'r2 raw', 'r1 proc']);
    assert.deepEqual(states(db), { 'r1 raw': 'failed', 'r1 proc': 'done', 'r2 raw': 'done' });
    db.close();
  });
});

/**
 * The backend's own tables in runs.sqlite (prefixed `damnit_ts_`, which DAMNIT's other tools
 * ignore): every event the backend took, as one row per (proposal, run, kind), and a few
 * key/value facts such as which listener holds the database (listener-claim.ts).
 *
 * A row's state: pending (waiting), running, done, failed, or adopted (there before the
 * backend first watched the directory; nothing to do). An event identical to a pending or
 * running row merges into it; an event for a row that is done, failed or adopted puts it back
 * to pending as reprocessing. Whatever was running when the backend died is pending again at
 * the next start (`resumeInterrupted`): nothing taken in is lost, and what was done is not
 * done again.
 */
import type Database from 'better-sqlite3';
import type { EventKind, RunEvent } from '../listener/events.js';

export type JobState = 'pending' | 'running' | 'done' | 'failed' | 'adopted';
export const JOB_STATES: readonly JobState[] = ['pending', 'running', 'done', 'failed', 'adopted'];

/** New data goes before reprocessing (a run or kind the backend has handled before). */
export type JobPriority = 'new' | 'reprocess';

export interface Job {
  proposal: number;
  run: number;
  kind: EventKind;
  priority: JobPriority;
  source: string;
  /** 1 on the first try; more when earlier tries were interrupted. */
  attempts: number;
  /** Identical events merged into this one. */
  repeats: number;
}

export type SubmitOutcome =
  /** Never seen before: queued as new data. */
  | 'queued'
  /** Identical to one waiting or running: nothing more to do. */
  | 'merged'
  /** Handled before: queued again, as reprocessing. */
  | 'requeued';

const PRIORITY_CODE: Record<JobPriority, number> = { new: 0, reprocess: 1 };

const SCHEMA = `
CREATE TABLE IF NOT EXISTS damnit_ts_jobs (
  proposal INTEGER NOT NULL,
  run INTEGER NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('raw', 'proc')),
  state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed', 'adopted')),
  priority INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  source TEXT NOT NULL,
  received_at REAL NOT NULL,
  repeats INTEGER NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0,
  started_at REAL,
  finished_at REAL,
  reason TEXT,
  PRIMARY KEY (proposal, run, kind)
);
CREATE INDEX IF NOT EXISTS damnit_ts_jobs_by_state ON damnit_ts_jobs (state, priority, seq);
CREATE TABLE IF NOT EXISTS damnit_ts_state (key TEXT PRIMARY KEY NOT NULL, value);
`;

interface JobRow {
  proposal: number;
  run: number;
  kind: EventKind;
  state: JobState;
  priority: number;
  source: string;
  attempts: number;
  repeats: number;
}

function toJob(row: JobRow): Job {
  return {
    proposal: row.proposal,
    run: row.run,
    kind: row.kind,
    priority: row.priority === PRIORITY_CODE.new ? 'new' : 'reprocess',
    source: row.source,
    attempts: row.attempts,
    repeats: row.repeats,
  };
}

function now(): number {
  return Date.now() / 1000;
}

export class JobStore {
  private readonly s;

  /** Whether a database has the backend's tables (a read-only reader cannot create them). */
  static existsIn(conn: Database.Database): boolean {
    return conn.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'damnit_ts_jobs'").get() !== undefined;
  }

  constructor(private readonly conn: Database.Database) {
    if (!conn.readonly) conn.exec(SCHEMA);
    this.s = {
      get: conn.prepare<[number, number, string], JobRow>(
        'SELECT proposal, run, kind, state, priority, source, attempts, repeats FROM damnit_ts_jobs WHERE proposal = ? AND run = ? AND kind = ?',
      ),
      exists: conn.prepare<[number, number, string], { one: number }>(
        'SELECT 1 AS one FROM damnit_ts_jobs WHERE proposal = ? AND run = ? AND kind = ?',
      ),
      nextSeq: conn.prepare<[], { seq: number }>('SELECT coalesce(max(seq), 0) + 1 AS seq FROM damnit_ts_jobs'),
      insert: conn.prepare(
        `INSERT INTO damnit_ts_jobs (proposal, run, kind, state, priority, seq, source, received_at)
         VALUES (@proposal, @run, @kind, @state, @priority, @seq, @source, @received_at)`,
      ),
      merge: conn.prepare('UPDATE damnit_ts_jobs SET repeats = repeats + 1 WHERE proposal = ? AND run = ? AND kind = ?'),
      requeue: conn.prepare(
        `UPDATE damnit_ts_jobs SET state = 'pending', priority = @priority, seq = @seq, source = @source,
           received_at = @received_at, repeats = 0, attempts = 0, started_at = NULL, finished_at = NULL, reason = NULL
         WHERE proposal = @proposal AND run = @run AND kind = @kind`,
      ),
      pendingRuns: conn.prepare<[], { proposal: number; run: number; priority: number }>(
        `SELECT proposal, run, min(priority) AS priority FROM damnit_ts_jobs WHERE state = 'pending'
         GROUP BY proposal, run ORDER BY min(priority), min(seq)`,
      ),
      // Raw before proc: calibrated data is processed after the raw data of the same run.
      nextOfRun: conn.prepare<[number, number], JobRow>(
        `SELECT proposal, run, kind, state, priority, source, attempts, repeats FROM damnit_ts_jobs
         WHERE proposal = ? AND run = ? AND state = 'pending' ORDER BY kind = 'proc', seq LIMIT 1`,
      ),
      start: conn.prepare(
        `UPDATE damnit_ts_jobs SET state = 'running', attempts = attempts + 1, started_at = ?
         WHERE proposal = ? AND run = ? AND kind = ? AND state = 'pending'`,
      ),
      finish: conn.prepare(
        `UPDATE damnit_ts_jobs SET state = ?, finished_at = ?, reason = ?
         WHERE proposal = ? AND run = ? AND kind = ? AND state = 'running'`,
      ),
      interrupted: conn.prepare<[], JobRow>(
        `SELECT proposal, run, kind, state, priority, source, attempts, repeats FROM damnit_ts_jobs
         WHERE state = 'running' ORDER BY seq`,
      ),
      resume: conn.prepare("UPDATE damnit_ts_jobs SET state = 'pending' WHERE proposal = ? AND run = ? AND kind = ?"),
      counts: conn.prepare<[], { state: JobState; n: number }>('SELECT state, count(*) AS n FROM damnit_ts_jobs GROUP BY state'),
      getState: conn.prepare<[string], { value: string }>('SELECT value FROM damnit_ts_state WHERE key = ?'),
      setState: conn.prepare(
        'INSERT INTO damnit_ts_state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
      ),
      deleteState: conn.prepare('DELETE FROM damnit_ts_state WHERE key = ?'),
    };
  }

  /** Runs `fn` in one write transaction (nested calls become savepoints). */
  transaction<T>(fn: () => T): T {
    return this.conn.transaction(fn).immediate();
  }

  /** Takes an event in (see the header for merging and reprocessing). */
  submit(event: RunEvent): { outcome: SubmitOutcome; priority: JobPriority } {
    return this.transaction(() => {
      const row = this.s.get.get(event.proposal, event.run, event.kind);
      if (row && (row.state === 'pending' || row.state === 'running')) {
        this.s.merge.run(event.proposal, event.run, event.kind);
        return { outcome: 'merged' as const, priority: toJob(row).priority };
      }
      const priority: JobPriority = row ? 'reprocess' : 'new';
      const values = {
        proposal: event.proposal,
        run: event.run,
        kind: event.kind,
        state: 'pending',
        priority: PRIORITY_CODE[priority],
        seq: this.s.nextSeq.get()?.seq ?? 1,
        source: event.source,
        received_at: event.time,
      };
      if (row) this.s.requeue.run(values);
      else this.s.insert.run(values);
      return { outcome: row ? ('requeued' as const) : ('queued' as const), priority };
    });
  }

  /** Whether the backend has any row for this event, in any state. */
  has(proposal: number, run: number, kind: EventKind): boolean {
    return this.s.exists.get(proposal, run, kind) !== undefined;
  }

  /** Records events as handled without doing anything for them (directories already there). */
  adopt(events: readonly RunEvent[]): void {
    this.transaction(() => {
      for (const event of events) {
        if (this.has(event.proposal, event.run, event.kind)) continue;
        this.s.insert.run({
          proposal: event.proposal,
          run: event.run,
          kind: event.kind,
          state: 'adopted',
          priority: PRIORITY_CODE.new,
          seq: this.s.nextSeq.get()?.seq ?? 1,
          source: event.source,
          received_at: event.time,
        });
      }
    });
  }

  /**
   * After a restart: what was running is pending again, unless it has been interrupted
   * `maxAttempts` times already (a run that kills its backend every time), which fails.
   */
  resumeInterrupted(maxAttempts: number): { resumed: Job[]; abandoned: Job[] } {
    return this.transaction(() => {
      const resumed: Job[] = [];
      const abandoned: Job[] = [];
      for (const row of this.s.interrupted.all()) {
        const job = toJob(row);
        if (row.attempts >= maxAttempts) {
          this.s.finish.run('failed', now(), `interrupted ${row.attempts} times`, row.proposal, row.run, row.kind);
          abandoned.push(job);
        } else {
          this.s.resume.run(row.proposal, row.run, row.kind);
          resumed.push(job);
        }
      }
      return { resumed, abandoned };
    });
  }

  /** Runs with pending work, most urgent first, each with its most urgent priority. */
  pendingRuns(): { proposal: number; run: number; priority: JobPriority }[] {
    return this.s.pendingRuns.all().map((r) => ({
      proposal: r.proposal,
      run: r.run,
      priority: r.priority === PRIORITY_CODE.new ? 'new' : 'reprocess',
    }));
  }

  /** The job of a run to do next, if any, without claiming it. */
  peek(proposal: number, run: number): Job | null {
    const row = this.s.nextOfRun.get(proposal, run);
    return row ? toJob(row) : null;
  }

  /** Claims a run's next pending job: it is running from now on. */
  claimNext(proposal: number, run: number): Job | null {
    return this.transaction(() => {
      const row = this.s.nextOfRun.get(proposal, run);
      if (!row) return null;
      this.s.start.run(now(), proposal, run, row.kind);
      return { ...toJob(row), attempts: row.attempts + 1 };
    });
  }

  /** Ends a running job. */
  markDone(job: Job): void {
    this.s.finish.run('done', now(), null, job.proposal, job.run, job.kind);
  }

  markFailed(job: Job, reason: string): void {
    this.s.finish.run('failed', now(), reason, job.proposal, job.run, job.kind);
  }

  /**
   * Takes the run's waiting jobs off the queue as failed, with `reason` (`cancel`): a restart
   * does not bring them back. Returns their kinds.
   */
  cancelPending(proposal: number, run: number, reason: string): EventKind[] {
    return this.transaction(() => {
      const kinds = this.conn
        .prepare<[number, number], { kind: EventKind }>("SELECT kind FROM damnit_ts_jobs WHERE proposal = ? AND run = ? AND state = 'pending'")
        .all(proposal, run)
        .map((r) => r.kind);
      this.conn
        .prepare("UPDATE damnit_ts_jobs SET state = 'failed', finished_at = ?, reason = ? WHERE proposal = ? AND run = ? AND state = 'pending'")
        .run(now(), reason, proposal, run);
      return kinds;
    });
  }

  /** Runs with waiting jobs, for `cancel --all`. */
  pendingRunNumbers(proposal: number): number[] {
    return this.conn
      .prepare<[number], { run: number }>("SELECT DISTINCT run FROM damnit_ts_jobs WHERE proposal = ? AND state = 'pending' ORDER BY run")
      .all(proposal)
      .map((r) => r.run);
  }

  counts(): Record<JobState, number> {
    const counts = Object.fromEntries(JOB_STATES.map((s) => [s, 0])) as Record<JobState, number>;
    for (const { state, n } of this.s.counts.all()) counts[state] = n;
    return counts;
  }

  getFact(key: string): string | null {
    return this.s.getState.get(key)?.value ?? null;
  }

  setFact(key: string, value: string): void {
    this.s.setState.run(key, value);
  }

  deleteFact(key: string): void {
    this.s.deleteState.run(key);
  }
}

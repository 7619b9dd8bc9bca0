/**
 * How `cancel` reaches the processes that run runs: a request row in runs.sqlite
 * (`damnit_ts_cancels`), which every backend and every `reprocess` watching the database polls
 * (twice a second). A process that had the run queued or running stops it and answers in
 * `damnit_ts_cancel_acks`; `cancel` waits for those answers to say what was stopped, and says
 * so when nobody had the run. Why the database: every process that may run a run already has it
 * open, it works across hosts on a shared file system (a signal would need the pid and the host),
 * and a request outlives a process that is restarting. Watchers register themselves
 * (`damnit_ts_cancel_watchers`) so that `cancel` need not wait when nobody is watching.
 */
import os from 'node:os';
import type Database from 'better-sqlite3';
import { withoutWaiting } from '../db/no-wait.js';
import { processAlive } from '../processes.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS damnit_ts_cancels (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  proposal INTEGER NOT NULL,
  run INTEGER,
  requested_by TEXT NOT NULL,
  requested_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS damnit_ts_cancel_acks (
  request_id INTEGER NOT NULL,
  watcher TEXT NOT NULL,
  run INTEGER,
  what TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS damnit_ts_cancel_watchers (
  pid INTEGER NOT NULL,
  host TEXT NOT NULL,
  started_at REAL NOT NULL,
  PRIMARY KEY (pid, host)
);
`;

/** A request: one run, or every run (`run` null, `cancel --all`). */
export interface CancelRequest {
  id: number;
  proposal: number;
  run: number | null;
  requestedBy: string;
}

/** Requests older than this are removed when a new one is made. */
const KEEP_S = 86_400;
export const POLL_MS = 500;

export function ensureCancelTables(conn: Database.Database): void {
  conn.exec(SCHEMA);
}

/** Records requests to cancel `runs` (null: all); returns their ids. */
export function requestCancel(conn: Database.Database, proposal: number, runs: (number | null)[], by: string): number[] {
  ensureCancelTables(conn);
  const now = Date.now() / 1000;
  return conn
    .transaction(() => {
      conn.prepare('DELETE FROM damnit_ts_cancel_acks WHERE request_id IN (SELECT id FROM damnit_ts_cancels WHERE requested_at < ?)').run(now - KEEP_S);
      conn.prepare('DELETE FROM damnit_ts_cancels WHERE requested_at < ?').run(now - KEEP_S);
      const insert = conn.prepare('INSERT INTO damnit_ts_cancels (proposal, run, requested_by, requested_at) VALUES (?, ?, ?, ?)');
      return runs.map((run) => Number(insert.run(proposal, run, by, now).lastInsertRowid));
    })
    .immediate();
}

export interface CancelAck {
  requestId: number;
  /** `host:pid` of the process that answered. */
  watcher: string;
  run: number | null;
  /** What it stopped; '' when it had nothing of the request. */
  what: string;
}

/** The answers to requests so far. */
export function cancelAcks(conn: Database.Database, ids: number[]): CancelAck[] {
  if (ids.length === 0) return [];
  return conn
    .prepare(`SELECT request_id AS requestId, watcher, run, what FROM damnit_ts_cancel_acks WHERE request_id IN (${ids.map(() => '?').join(',')})`)
    .all(...ids) as CancelAck[];
}

function watcherName(host: string, pid: number): string {
  return `${host}:${pid}`;
}

/** The processes watching for requests now (`host:pid`); those on this host whose pid is gone are left out. */
export function liveWatchers(conn: Database.Database): string[] {
  ensureCancelTables(conn);
  const rows = conn.prepare('SELECT pid, host FROM damnit_ts_cancel_watchers').all() as { pid: number; host: string }[];
  return rows.filter((r) => r.host !== os.hostname() || processAlive(r.pid)).map((r) => watcherName(r.host, r.pid));
}

/**
 * Polls for new requests and hands each to `handle`, which returns what it stopped for which
 * runs (nothing when it had none of them); the answers are recorded for `cancel`.
 */
export class CancelWatcher {
  /** The last request seen; null until the watcher could register (the database was free). */
  private lastId: number | null = null;
  private readonly timer: NodeJS.Timeout;
  private failures = 0;

  constructor(
    private readonly conn: Database.Database,
    private readonly handle: (request: CancelRequest) => { run: number; what: string }[],
    private readonly onError: (err: Error) => void = () => undefined,
  ) {
    this.poll();
    this.timer = setInterval(() => this.poll(), POLL_MS);
    this.timer.unref();
  }

  /** Registers (once), then looks for new requests; never waits for a database another process holds. */
  poll(): void {
    try {
      withoutWaiting(this.conn, () => this.look());
      this.failures = 0;
    } catch (err) {
      // A locked database: the next poll tries again (lastId only moves past handled requests).
      // Said once per spell of failures, not twice a second.
      if (this.failures++ === 0) this.onError(err as Error);
    }
  }

  private look(): void {
    if (this.lastId === null) {
      ensureCancelTables(this.conn);
      const last = (this.conn.prepare('SELECT coalesce(max(id), 0) AS id FROM damnit_ts_cancels').get() as { id: number }).id;
      this.conn
        .prepare('INSERT OR REPLACE INTO damnit_ts_cancel_watchers (pid, host, started_at) VALUES (?, ?, ?)')
        .run(process.pid, os.hostname(), Date.now() / 1000);
      this.lastId = last;
    }
    const rows = this.conn
      .prepare('SELECT id, proposal, run, requested_by AS requestedBy FROM damnit_ts_cancels WHERE id > ? ORDER BY id')
      .all(this.lastId) as CancelRequest[];
    const ack = this.conn.prepare('INSERT INTO damnit_ts_cancel_acks (request_id, watcher, run, what) VALUES (?, ?, ?, ?)');
    const me = watcherName(os.hostname(), process.pid);
    for (const request of rows) {
      const answers = this.handle(request);
      // Always an answer, so that `cancel` knows this process had nothing of it without waiting.
      if (answers.length === 0) ack.run(request.id, me, request.run, '');
      for (const a of answers) ack.run(request.id, me, a.run, a.what);
      // Only now: a request whose handling failed on a busy database is handled again.
      this.lastId = request.id;
    }
  }

  close(): void {
    clearInterval(this.timer);
    try {
      withoutWaiting(this.conn, () =>
        this.conn.prepare('DELETE FROM damnit_ts_cancel_watchers WHERE pid = ? AND host = ?').run(process.pid, os.hostname()),
      );
    } catch {
      // Stale rows are recognised by their dead pid.
    }
  }
}

/** Who asks: `alice on max-exfl001`. */
export function requester(): string {
  return `${os.userInfo().username} on ${os.hostname()}`;
}

/**
 * One backend per database directory. The claim is an exclusive SQLite lock on a small file
 * beside runs.sqlite (`.damnit-listener.lock`), held for as long as the backend runs. SQLite
 * locks with fcntl: the kernel releases the lock when its holder dies, however it dies, and
 * network file systems (NFS's lock manager, GPFS) honour it across hosts. A backend that is
 * stopped (SIGSTOP) or swapping still holds it, so no second one starts beside it, and a
 * second one that is refused touches nothing. Nothing but the lock decides: there is no
 * heartbeat to miss.
 *
 * The lock file cannot be read while it is held, so who holds it (host, pid, since when) is
 * written to runs.sqlite's damnit_ts_state, for the refusal message and `backend status`.
 */
import os from 'node:os';
import Database from 'better-sqlite3';
import { z } from 'zod';
import type { DatabaseDir } from '../database-dir.js';
import { isBusy } from '../db/errors.js';
import { shareOwnedPath, type SharingModes } from '../sharing.js';
import type { JobStore } from './job-store.js';

/** A moment's wait, for a `backend status` that is just looking at the lock. */
const LOCK_WAIT_MS = 2_000;
const CLAIM_FACT = 'listener';

const ListenerClaim = z.object({
  pid: z.number().int(),
  host: z.string(),
  /** Epoch seconds. */
  since: z.number(),
});
/** Which process listens for this database, as it wrote it when it took the lock. */
export type ListenerClaim = z.infer<typeof ListenerClaim>;

/** The recorded claim; an unreadable one (or one from an older version) counts as none. */
export function recordedClaim(store: JobStore): ListenerClaim | null {
  const text = store.getFact(CLAIM_FACT);
  if (text === null) return null;
  try {
    const parsed = ListenerClaim.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/** `pid 123 on host, since 2026-11-24 03:57:02`: who a claim names. */
export function describeClaim(claim: ListenerClaim): string {
  const since = new Date(claim.since * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
  return `pid ${claim.pid} on ${claim.host}, since ${since}`;
}

export class ListenerLock {
  private constructor(
    private readonly conn: Database.Database,
    private readonly store: JobStore,
    readonly claim: ListenerClaim,
  ) {}

  /**
   * Takes the lock and records this process as the listener; when another process holds it,
   * returns who that is (as recorded) and changes nothing.
   */
  static acquire(dir: DatabaseDir, store: JobStore, modes: SharingModes): ListenerLock | { heldBy: ListenerClaim | null } {
    const conn = new Database(dir.listenerLockFile, { timeout: LOCK_WAIT_MS });
    const claim: ListenerClaim = { pid: process.pid, host: os.hostname(), since: Date.now() / 1000 };
    try {
      // Held from the first write until the connection closes; no journal file beside it.
      conn.pragma('locking_mode = EXCLUSIVE');
      conn.pragma('journal_mode = MEMORY');
      conn.exec('CREATE TABLE IF NOT EXISTS holder (pid INTEGER, host TEXT, since REAL)');
      conn.transaction(() => {
        conn.exec('DELETE FROM holder');
        conn.prepare('INSERT INTO holder VALUES (?, ?, ?)').run(claim.pid, claim.host, claim.since);
      }).immediate();
    } catch (err) {
      conn.close();
      if (isBusy(err)) return { heldBy: recordedClaim(store) };
      throw err;
    }
    // Whoever of the team starts the next backend must be able to lock it too.
    shareOwnedPath(dir.listenerLockFile, 'file', modes);
    store.setFact(CLAIM_FACT, JSON.stringify(claim));
    return new ListenerLock(conn, store, claim);
  }

  /**
   * Whether some process holds the lock now (a moment's shared lock to look: it does not stop
   * a backend from starting).
   */
  static isHeld(dir: DatabaseDir): boolean {
    let conn: Database.Database;
    try {
      conn = new Database(dir.listenerLockFile, { readonly: true, fileMustExist: true, timeout: 0 });
    } catch {
      return false;
    }
    try {
      conn.prepare('SELECT count(*) FROM sqlite_master').get();
      return false;
    } catch (err) {
      return isBusy(err);
    } finally {
      conn.close();
    }
  }

  /** Forgets the recorded claim (if still ours) and lets the lock go. */
  release(): void {
    try {
      this.store.transaction(() => {
        const current = recordedClaim(this.store);
        if (current?.pid === this.claim.pid && current.host === this.claim.host) this.store.deleteFact(CLAIM_FACT);
      });
    } finally {
      this.conn.close();
    }
  }
}

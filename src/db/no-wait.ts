import type Database from 'better-sqlite3';

/**
 * Runs `fn` on a connection that does not wait for a lock another process holds: a busy
 * database fails at once (SQLITE_BUSY) instead of blocking this process, whose event loop
 * serves runs meanwhile. For bookkeeping that can simply try again later (cancel requests,
 * the failed-runs list).
 */
export function withoutWaiting<T>(conn: Database.Database, fn: () => T): T {
  const previous = conn.pragma('busy_timeout', { simple: true }) as number;
  conn.pragma('busy_timeout = 0');
  try {
    return fn();
  } finally {
    conn.pragma(`busy_timeout = ${previous}`);
  }
}

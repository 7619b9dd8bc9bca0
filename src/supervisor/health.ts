/**
 * Whether the backend Supervisor runs is really working, or exits soon after each start while
 * Supervisor starts it again (a crash loop, which `supervisorctl status` shows as RUNNING most
 * of the time). A backend that has started its sources says so in runs.sqlite
 * (`listener_ready`, with its pid); every exit of the program is a line in supervisord.log.
 */
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DatabaseDir } from '../database-dir.js';
import { openDatabase } from '../db/database.js';
import { JobStore } from '../scheduler/job-store.js';
import { PROGRAM_NAME } from './config.js';
import { programStatus } from './control.js';

export const READY_FACT = 'listener_ready';

/** Exits within this window that make a running backend count as crash-looping. */
export const CRASH_WINDOW_MS = 180_000;
export const CRASH_EXITS = 2;

/** The end of a text file (the last `bytes` of it), '' when it cannot be read. */
function tail(file: string, bytes = 65_536): string {
  try {
    const size = statSync(file).size;
    const fd = openSync(file, 'r');
    try {
      const length = Math.min(size, bytes);
      const buffer = Buffer.alloc(length);
      readSync(fd, buffer, 0, length, size - length);
      return buffer.toString('utf8');
    } finally {
      closeSync(fd);
    }
  } catch {
    return '';
  }
}

/** supervisord's `2026-12-02 10:13:18,123` (local time) as epoch ms. */
function supervisorTime(text: string): number {
  const m = /^(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d),(\d{3})/.exec(text);
  if (!m) return Number.NaN;
  const [y, mo, d, h, mi, s, ms] = m.slice(1).map(Number) as [number, number, number, number, number, number, number];
  return new Date(y, mo - 1, d, h, mi, s, ms).getTime();
}

/** How many times the program exited since `sinceMs` (epoch ms), from supervisord.log. */
export function exitsSince(dir: DatabaseDir, sinceMs: number): number {
  const pattern = new RegExp(`\\b(exited|terminated by \\w+): ${PROGRAM_NAME}\\b`);
  return tail(dir.supervisordLog)
    .split('\n')
    .filter((line) => pattern.test(line) && !/\(exit status 0; expected\)/.test(line) && supervisorTime(line) >= sinceMs).length;
}

/** The backend's last ERROR entry in amore.log (its first line), for saying why it keeps exiting. */
export function lastBackendError(dir: DatabaseDir): string | null {
  const lines = tail(dir.logFile).split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i] as string;
    const at = line.indexOf(' ERROR ');
    if (at >= 0) return line.slice(at + 7).trim();
    if (line.includes('"level":"error"')) {
      try {
        return String((JSON.parse(line) as { msg?: unknown }).msg ?? '').split('\n')[0] ?? null;
      } catch {
        return null;
      }
    }
  }
  return null;
}

/** The pid of the backend that last said it was ready, if it is on record. */
export function readyPid(dir: DatabaseDir): number | null {
  try {
    const db = openDatabase(dir, { readonly: true });
    try {
      if (!JobStore.existsIn(db.connection)) return null;
      const text = new JobStore(db.connection).getFact(READY_FACT);
      const pid = text === null ? Number.NaN : Number((JSON.parse(text) as { pid?: unknown }).pid);
      return Number.isInteger(pid) ? pid : null;
    } finally {
      db.close();
    }
  } catch {
    return null;
  }
}

export type Readiness = { state: 'ready' } | { state: 'crash-looping'; exits: number; lastError: string | null } | { state: 'starting' };

/**
 * After a start: waits until the program with `pid` says it is ready, or exits (Supervisor
 * starting it again counts as a crash loop), or `timeoutMs` passes (still starting).
 */
export async function waitUntilReady(dir: DatabaseDir, pid: number | null, startedAtMs: number, timeoutMs = 60_000): Promise<Readiness> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (pid !== null && readyPid(dir) === pid) return { state: 'ready' };
    const exits = exitsSince(dir, startedAtMs);
    if (exits > 0) return { state: 'crash-looping', exits, lastError: lastBackendError(dir) };
    const status = await programStatus(dir);
    if (status.supervisord === 'running' && status.state === 'RUNNING' && pid !== null && status.pid !== pid) {
      return { state: 'crash-looping', exits: 1, lastError: lastBackendError(dir) };
    }
    if (Date.now() > deadline) return { state: 'starting' };
    await sleep(200);
  }
}

/** For `backend status`: a running program that exited repeatedly of late is crash-looping. */
export function crashLoop(dir: DatabaseDir): { exits: number; lastError: string | null } | null {
  const exits = exitsSince(dir, Date.now() - CRASH_WINDOW_MS);
  return exits >= CRASH_EXITS ? { exits, lastError: lastBackendError(dir) } : null;
}

/** One line for a crash loop. */
export function describeCrashLoop(loop: { exits: number; lastError: string | null }, window: string): string {
  const why = loop.lastError ? `; its last error in amore.log: ${loop.lastError}` : '; see the end of amore.log';
  return `damnit: CRASH-LOOPING: the backend exited ${loop.exits === 1 ? 'once' : `${loop.exits} times`} ${window} and Supervisor keeps starting it again${why}`;
}

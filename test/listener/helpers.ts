/** Shared by the listener, scheduler, listen and backend tests. */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { DatabaseDir } from '../../src/database-dir.js';
import { openDatabase, type DamnitDb } from '../../src/db/database.js';
import { runCli } from '../helpers/cli.js';
import { TEST_PYTHON } from '../helpers/paths.js';
import { makeSampleProposal } from '../helpers/python.js';

export const PROPOSAL = 1234;

/**
 * Waits for a condition the system reaches by itself (a run processed, a restart), polling;
 * the bound is generous and only there so that a broken test ends.
 */
export async function eventually<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/**
 * A proposal root with `runs` sample runs (none by default), and a database directory at the
 * conventional place with the given context, proposal 1234 and Debian's Python.
 */
export async function makeDatabase(
  root: string,
  context: string,
  opts: { runs?: number; generatorArgs?: string[] } = {},
): Promise<string> {
  if ((opts.runs ?? 0) > 0) {
    await makeSampleProposal(root, ['--runs', String(opts.runs), '--trains', '5', ...(opts.generatorArgs ?? [])]);
  }
  mkdirSync(path.join(root, 'raw'), { recursive: true });
  const db = path.join(root, 'usr', 'Shared', 'amore');
  mkdirSync(db, { recursive: true });
  writeFileSync(path.join(db, 'context.py'), context);
  for (const args of [['proposal', String(PROPOSAL)], ['db-config', 'context_python', TEST_PYTHON]]) {
    const res = await runCli(args, { cwd: db });
    assert.equal(res.code, 0, res.stderr);
  }
  return db;
}

/** Opens a database directory as the backend does (tables created on the way). */
export function openDb(dir: string): DamnitDb {
  return openDatabase(new DatabaseDir(dir));
}

export interface JobRow {
  run: number;
  kind: string;
  state: string;
  priority: number;
  attempts: number;
  repeats: number;
  reason: string | null;
}

/** The backend's job table, read as another process would. */
export function jobRows(db: string): JobRow[] {
  const conn = new Database(path.join(db, 'runs.sqlite'), { readonly: true });
  try {
    const exists = conn.prepare("SELECT 1 FROM sqlite_master WHERE name = 'damnit_ts_jobs'").get();
    if (!exists) return [];
    return conn
      .prepare('SELECT run, kind, state, priority, attempts, repeats, reason FROM damnit_ts_jobs ORDER BY run, kind')
      .all() as JobRow[];
  } finally {
    conn.close();
  }
}

/** run_variables values by run and name. */
export function values(db: string): Map<string, unknown> {
  const conn = new Database(path.join(db, 'runs.sqlite'), { readonly: true });
  try {
    const rows = conn.prepare('SELECT run, name, value FROM run_variables').all() as { run: number; name: string; value: unknown }[];
    return new Map(rows.map((r) => [`r${r.run}.${r.name}`, r.value]));
  } finally {
    conn.close();
  }
}

export function readLog(db: string): string {
  try {
    return readFileSync(path.join(db, 'amore.log'), 'utf8');
  } catch {
    return '';
  }
}

/** Log lines about one run and data kind: `r3 raw: done ...` and the like. */
export function runLines(log: string, run: number, kind: string): string[] {
  return log.split('\n').filter((l) => l.includes(` r${run} ${kind}: `));
}

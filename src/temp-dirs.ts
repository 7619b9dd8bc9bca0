/**
 * The backend's temporary directories: `<prefix><owner pid>-XXXXXX` under the system's temporary
 * directory (TMPDIR). Each is removed when its owner is done with it, and at the latest when the
 * owner exits or a signal ends it (exit-hooks.ts). An owner killed with SIGKILL cannot clean up:
 * the next process that makes a temporary directory removes those of owners no longer alive
 * (the pid in the name says whose it is). The warm worker (Python) names its warm-up directory
 * the same way.
 */
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { whenExiting } from './exit-hooks.js';
import { processAlive } from './processes.js';

/** Every prefix in use; the Python side's is in python-shim/_damnit_shim/worker_warm_up.py. */
export const TEMP_DIR_PREFIXES = ['damnit-worker-', 'damnit-watch-', 'damnit-sbatch-', 'damnit-warm-up-'] as const;
export type TempDirPrefix = (typeof TEMP_DIR_PREFIXES)[number];

const STALE_NAME = new RegExp(`^(?:${TEMP_DIR_PREFIXES.join('|')})(\\d+)-`);

const removals = new Map<string, () => void>();
let swept = false;

/**
 * The directories under `root` left by owners of ours that are no longer alive: named by one of
 * our prefixes with a pid that has ended, and belonging to this user.
 */
export function staleTempDirs(root = os.tmpdir()): string[] {
  let entries: string[];
  try {
    entries = readdirSync(root);
  } catch {
    return [];
  }
  const uid = process.getuid?.();
  const stale: string[] = [];
  for (const entry of entries) {
    const pid = Number(STALE_NAME.exec(entry)?.[1] ?? Number.NaN);
    if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid || processAlive(pid)) continue;
    const dir = path.join(root, entry);
    try {
      const stat = statSync(dir);
      if (stat.isDirectory() && (uid === undefined || stat.uid === uid)) stale.push(dir);
    } catch {
      // removed meanwhile
    }
  }
  return stale;
}

/** Removes what staleTempDirs finds; returns what was removed. */
export function sweepStaleTempDirs(root = os.tmpdir()): string[] {
  const removed: string[] = [];
  for (const dir of staleTempDirs(root)) {
    try {
      rmSync(dir, { recursive: true, force: true });
      removed.push(dir);
    } catch {
      // Another process swept it first, or it is not ours to remove after all.
    }
  }
  return removed;
}

/**
 * A new private (0700) directory `<prefix><pid>-XXXXXX`, removed by removeTempDir or when this
 * process ends. The first call of a process first sweeps the stale directories of dead owners.
 */
export function makeTempDir(prefix: TempDirPrefix): string {
  if (!swept) {
    swept = true;
    sweepStaleTempDirs();
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), `${prefix}${process.pid}-`));
  removals.set(dir, whenExiting(() => rmSync(dir, { recursive: true, force: true })));
  return dir;
}

/** Removes a directory made by makeTempDir, now. */
export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  removals.get(dir)?.();
  removals.delete(dir);
}

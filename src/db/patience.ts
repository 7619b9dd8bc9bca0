/**
 * Writing to a database another process holds locked: a command waits rather than fails,
 * says so once the wait is noticeable, and gives up after `db_busy_timeout` with one line.
 * Each try blocks for the connection's own busy timeout at most (short for commands that use
 * this), and the event loop runs between tries, so runs in progress go on meanwhile.
 *
 * Once one write has given up, later ones try once and are put aside if the lock is still
 * held: the command keeps processing, and retries what it put aside at its end
 * (`retryDeferred`), so a lock held for a long time costs one wait, not one per run.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { DatabaseBusyError, isBusy } from './errors.js';

/** A wait shorter than this is not worth a word. */
export const NOTICE_AFTER_MS = 3_000;
/** How often a long wait is mentioned again. */
const NOTICE_EVERY_MS = 60_000;
const RETRY_EVERY_MS = 250;

export interface PatienceOptions {
  /** The database file, for the messages. */
  file: string;
  /** Give up after waiting this long for one write. */
  limitMs: number;
  /** Told that a write is waiting (once past NOTICE_AFTER_MS, then every minute). */
  onWait: (message: string) => void;
}

interface Deferred {
  label: string;
  write: () => void;
}

export class DatabasePatience {
  private gaveUp = false;
  private readonly deferred: Deferred[] = [];

  constructor(private readonly opts: PatienceOptions) {}

  /**
   * Runs `write`, trying again while the database is locked; throws DatabaseBusyError when the
   * limit is reached (or at once, once an earlier write has given up). With `deferLabel`, a
   * write that gives up is kept for `retryDeferred`.
   */
  async write<T>(write: () => T, deferLabel?: string): Promise<T> {
    const started = Date.now();
    let noticed: number | null = null;
    for (;;) {
      try {
        return write();
      } catch (err) {
        if (!isBusy(err)) throw err;
        const waited = Date.now() - started;
        if (this.gaveUp || waited >= this.opts.limitMs) {
          this.gaveUp = true;
          if (deferLabel !== undefined) this.deferred.push({ label: deferLabel, write: () => void write() });
          throw new DatabaseBusyError(this.opts.file, this.opts.limitMs);
        }
        if (waited >= NOTICE_AFTER_MS && (noticed === null || waited - noticed >= NOTICE_EVERY_MS)) {
          noticed = waited;
          this.opts.onWait(
            `waiting for ${this.opts.file}: another process holds it locked ` +
              `(${Math.round(waited / 1000)} s so far; giving up after ${Math.round(this.opts.limitMs / 1000)} s)`,
          );
        }
        await sleep(RETRY_EVERY_MS);
      }
    }
  }

  /** Whether some write has given up. */
  get givenUp(): boolean {
    return this.gaveUp;
  }

  /**
   * Tries each write put aside once more, a last chance without a long wait. A label (a run,
   * whose results may have been put aside in several writes) is written once all of its are.
   */
  retryDeferred(): { written: string[]; left: string[] } {
    const left = new Set<string>();
    const labels = new Set<string>();
    for (const item of this.deferred.splice(0)) {
      labels.add(item.label);
      try {
        item.write();
      } catch (err) {
        if (!isBusy(err)) throw err;
        left.add(item.label);
      }
    }
    return { written: [...labels].filter((label) => !left.has(label)), left: [...left] };
  }
}

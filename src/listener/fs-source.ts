/**
 * Events from the file system: a new `raw/rNNNN/` directory under the proposal root gives a raw
 * event once its files are complete (run-files.ts), and a `proc/rNNNN/` directory later gives a
 * proc event (never before the raw event of that run).
 *
 * chokidar reports changes at once on local file systems; a periodic rescan finds what it cannot
 * see (changes made by other machines on a network file system, directories that appear before
 * raw/ itself exists). A directory is looked at again until its files have been complete and
 * unchanged for the settle time.
 *
 * What was already handled is asked of the backend (`known`), so a restart neither repeats old
 * events nor misses runs that arrived while it was down. The first time a database is watched,
 * the run directories already there are taken as handled (`adoptExisting`): starting a backend
 * on an old proposal does not reprocess it.
 */
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import { nowSeconds, type EventKind, type EventSink, type EventSource, type RunEvent, type SourceNotice } from './events.js';
import { snapshotRunDir } from './run-files.js';

export const FS_SOURCE = 'fs';

export interface FileSystemSourceOptions {
  proposal: number;
  /** The proposal root holding raw/ and proc/. */
  proposalRoot: string;
  /** How long a run directory must stay complete and unchanged. */
  settleMs: number;
  /** How often everything is looked at again, for changes no watcher reports. */
  rescanMs: number;
  /** Whether the backend already has this event (queued, done, or adopted). */
  known: (run: number, kind: EventKind) => boolean;
  /** Called once, on the first scan, with the complete directories already there; null: not the first time. */
  adoptExisting: ((events: RunEvent[]) => void) | null;
}

interface Pending {
  signature: string;
  /** When this signature was first seen (ms). */
  since: number;
  timer: NodeJS.Timeout | null;
}

const RUN_DIR = /^r(\d+)$/;

export class FileSystemSource implements EventSource {
  readonly name = FS_SOURCE;
  /** The file system never runs out of events. */
  readonly ended = new Promise<void>(() => undefined);
  private readonly pending = new Map<string, Pending>();
  /** Events given (or adopted) by this source instance. */
  private readonly given = new Set<string>();
  private watcher: FSWatcher | null = null;
  private rescanTimer: NodeJS.Timeout | null = null;
  private sink: EventSink = () => undefined;
  private notice: SourceNotice = () => undefined;
  private closed = false;
  private scanning: Promise<void> = Promise.resolve();

  constructor(private readonly opts: FileSystemSourceOptions) {}

  private kindDir(kind: EventKind): string {
    return path.join(this.opts.proposalRoot, kind);
  }

  private key(run: number, kind: EventKind): string {
    return `${kind}/${run}`;
  }

  private isHandled(run: number, kind: EventKind): boolean {
    return this.given.has(this.key(run, kind)) || this.opts.known(run, kind);
  }

  async start(sink: EventSink, notice: SourceNotice): Promise<void> {
    this.sink = sink;
    this.notice = notice;
    if (this.opts.adoptExisting) {
      const existing = (await this.completeDirectories()).filter((e) => !this.opts.known(e.run, e.kind));
      for (const event of existing) this.given.add(this.key(event.run, event.kind));
      this.opts.adoptExisting(existing);
      if (existing.length > 0) {
        notice('info', `${existing.length} run directories were already there when this database was first watched: taken as handled`);
      }
    }
    const dirs = [this.kindDir('raw'), this.kindDir('proc')];
    this.watcher = watch(dirs, { depth: 1, ignoreInitial: true, persistent: false });
    this.watcher.on('all', (_event, changed) => {
      if (typeof changed === 'string') this.onChange(changed);
    });
    this.watcher.on('error', (err) => notice('warn', `file watcher: ${String(err)}`));
    await new Promise<void>((resolve) => this.watcher?.once('ready', () => resolve()));
    await this.rescan();
  }

  /** Every raw and proc directory that is complete right now, without waiting to settle. */
  private async completeDirectories(): Promise<RunEvent[]> {
    const events: RunEvent[] = [];
    for (const kind of ['raw', 'proc'] as const) {
      for (const run of await this.runDirectories(kind)) {
        const snapshot = await snapshotRunDir(path.join(this.kindDir(kind), runDirName(run)));
        if (snapshot && snapshot.incomplete === null) {
          events.push({ proposal: this.opts.proposal, run, kind, source: FS_SOURCE, time: nowSeconds() });
        }
      }
    }
    return events;
  }

  private async runDirectories(kind: EventKind): Promise<number[]> {
    try {
      const entries = await readdir(this.kindDir(kind), { withFileTypes: true });
      return entries
        .filter((e) => e.isDirectory() || e.isSymbolicLink())
        .map((e) => RUN_DIR.exec(e.name))
        .filter((m): m is RegExpExecArray => m !== null)
        .map((m) => Number(m[1]))
        .sort((a, b) => a - b);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }

  private onChange(changed: string): void {
    const relative = path.relative(this.opts.proposalRoot, changed).split(path.sep);
    const [kindName, dirName] = relative;
    if ((kindName !== 'raw' && kindName !== 'proc') || dirName === undefined) return;
    const match = RUN_DIR.exec(dirName);
    if (match) this.look(Number(match[1]), kindName, this.opts.settleMs);
  }

  /** Looks at every run directory not handled yet, then again after the rescan interval. */
  private rescan(): Promise<void> {
    this.scanning = this.scanning.then(async () => {
      if (this.closed) return;
      try {
        for (const kind of ['raw', 'proc'] as const) {
          for (const run of await this.runDirectories(kind)) {
            if (!this.isHandled(run, kind) && !this.pending.get(this.key(run, kind))?.timer) await this.check(run, kind);
          }
        }
      } catch (err) {
        this.notice('warn', `could not look at ${this.opts.proposalRoot}: ${(err as Error).message}`);
      }
      if (!this.closed) this.rescanTimer = setTimeout(() => void this.rescan(), this.opts.rescanMs);
    });
    return this.scanning;
  }

  /** Looks at one run directory after `delayMs`, unless a look is already due sooner. */
  private look(run: number, kind: EventKind, delayMs: number): void {
    if (this.closed || this.isHandled(run, kind)) return;
    const key = this.key(run, kind);
    const entry = this.pending.get(key) ?? { signature: '', since: Date.now(), timer: null };
    this.pending.set(key, entry);
    if (entry.timer) clearTimeout(entry.timer);
    entry.timer = setTimeout(() => {
      entry.timer = null;
      void this.check(run, kind).catch((err: Error) => this.notice('warn', `could not look at ${kind}/${runDirName(run)}: ${err.message}`));
    }, delayMs);
  }

  private async check(run: number, kind: EventKind): Promise<void> {
    if (this.closed || this.isHandled(run, kind)) return;
    const key = this.key(run, kind);
    const snapshot = await snapshotRunDir(path.join(this.kindDir(kind), runDirName(run)));
    if (this.closed || this.isHandled(run, kind)) return;
    if (snapshot === null) {
      this.forget(key);
      return;
    }
    const now = Date.now();
    let entry = this.pending.get(key);
    if (!entry || entry.signature !== snapshot.signature) {
      entry = { signature: snapshot.signature, since: now, timer: entry?.timer ?? null };
      this.pending.set(key, entry);
    }
    // Calibrated data comes after raw data: a proc directory waits for its run's raw event.
    const waiting = kind === 'proc' && !this.isHandled(run, 'raw');
    const settled = now - entry.since >= this.opts.settleMs;
    if (snapshot.incomplete === null && settled && !waiting) {
      // Throws when the event could not be recorded: the next rescan tries again.
      this.sink({ proposal: this.opts.proposal, run, kind, source: FS_SOURCE, time: nowSeconds() });
      this.forget(key);
      this.given.add(key);
      // The proc directory may have been complete before the raw one was.
      if (kind === 'raw') this.look(run, 'proc', 0);
      return;
    }
    if (snapshot.incomplete !== null || !settled) {
      this.look(run, kind, Math.max(entry.since + this.opts.settleMs - now, Math.min(this.opts.settleMs, 1000)));
    }
  }

  private forget(key: string): void {
    const entry = this.pending.get(key);
    if (entry?.timer) clearTimeout(entry.timer);
    this.pending.delete(key);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.rescanTimer) clearTimeout(this.rescanTimer);
    for (const key of [...this.pending.keys()]) this.forget(key);
    await this.watcher?.close();
    await this.scanning;
  }
}

export function runDirName(run: number): string {
  return `r${String(run).padStart(4, '0')}`;
}

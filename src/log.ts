/**
 * The backend's log, `amore.log` in the database directory (contract section 7): which runs
 * arrived, what was started, every failure, and the user's own output of each run. Two forms:
 *
 *   text (default), one line per entry, for `tail -f`:
 *     2026-11-24 03:46:45.123 INFO  r42 raw: done in 1.2 s: 5 variables
 *     2026-11-24 03:46:45.001 INFO  r42 raw> what the context printed
 *   json, one pino object per line, for machines:
 *     {"level":"info","time":"2026-11-24T03:46:45.123Z","pid":7,"hostname":"h","run":42,"data":"raw","msg":"done ..."}
 *
 * Entries about a run carry `run` and `data` (raw or proc); the user's output also carries
 * `stream` (stdout or stderr). Lines of a multi-line message are indented in the text form, so
 * that every entry starts with its time.
 */
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import path from 'node:path';
import { pino, type Logger } from 'pino';
import type { LogFormat } from './log-format.js';

export { LOG_FORMATS, type LogFormat } from './log-format.js';

export type BackendLogger = Logger;

export interface BackendLogOptions {
  /** The log file, appended to (normally DatabaseDir.logFile). */
  file: string;
  format: LogFormat;
  /** Where a text copy of every entry goes as well (a terminal), if anywhere. */
  echo?: NodeJS.WritableStream;
  /** `debug` shows merged repeat events and other details; `info` by default. */
  level?: 'debug' | 'info';
  /** Fields every entry carries, e.g. the proposal. */
  base?: Record<string, unknown>;
}

const LEVEL_WIDTH = 5;

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

/** Local time as `YYYY-MM-DD HH:MM:SS.mmm`, the form Python's logging writes. */
export function localTimestamp(date: Date): string {
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`
  );
}

/** The text form of one pino entry (its parsed JSON object). */
export function formatTextEntry(entry: Record<string, unknown>): string {
  const time = typeof entry.time === 'string' || typeof entry.time === 'number' ? new Date(entry.time) : new Date();
  const level = String(entry.level ?? 'info').toUpperCase().padEnd(LEVEL_WIDTH);
  const message = String(entry.msg ?? '');
  let subject = '';
  if (typeof entry.run === 'number') {
    const data = typeof entry.data === 'string' ? ` ${entry.data}` : '';
    // The user's output is marked with '>' so that it never reads as the backend's own words.
    subject = `r${entry.run}${data}${typeof entry.stream === 'string' ? '>' : ':'} `;
  }
  const text = `${subject}${message}`.replace(/\r?\n/g, '\n    ');
  return `${localTimestamp(time)} ${level} ${text}\n`;
}

/** Appends whole lines with one write(2) each, so that lines of concurrent writers never mix. */
class AppendFile {
  private readonly fd: number;

  constructor(file: string) {
    mkdirSync(path.dirname(file), { recursive: true });
    // The umask (the database directory's sharing modes) decides who else may read and write it.
    this.fd = openSync(file, 'a', 0o666);
  }

  write(text: string): void {
    writeSync(this.fd, text);
  }

  close(): void {
    closeSync(this.fd);
  }
}

/**
 * A pino logger writing amore.log synchronously: an entry is on disk before the next step, so
 * that a backend killed with SIGKILL leaves a log that says how far it got.
 */
export function createBackendLogger(opts: BackendLogOptions): { logger: BackendLogger; close: () => void } {
  const file = new AppendFile(opts.file);
  const destination = {
    write(line: string): void {
      const entry = JSON.parse(line) as Record<string, unknown>;
      const text = formatTextEntry(entry);
      file.write(opts.format === 'json' ? line : text);
      opts.echo?.write(text);
    },
  };
  const logger = pino(
    {
      level: opts.level ?? 'info',
      base: { pid: process.pid, ...opts.base },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
  return { logger, close: () => file.close() };
}

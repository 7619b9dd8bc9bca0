/**
 * Which Python version's grammar a context file is checked against.
 *
 * `--python-version` when given; else, for a file in a database directory (the file's own
 * directory, else the current one) whose `context_python` is set and runs here, that
 * interpreter's version; else 3.11. Python is probed when it is there, never required.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { UsageError } from '../cli/errors.js';
import { DATABASE_FILE } from '../database-dir.js';
import { formatVersion, type PythonVersion } from './diagnostics.js';

export const DEFAULT_TARGET: PythonVersion = { major: 3, minor: 11 };
/** Context files run on 3.9 and newer; Pyodide's parser knows grammars up to its own, 3.14. */
export const OLDEST_TARGET: PythonVersion = { major: 3, minor: 9 };
export const NEWEST_TARGET: PythonVersion = { major: 3, minor: 14 };

/** `3.11` (or `3.11.4`) from the command line; anything else is a usage error. */
export function parsePythonVersion(text: string): PythonVersion {
  const match = /^3\.(\d{1,2})(?:\.\d+)?$/.exec(text.trim());
  const minor = match ? Number(match[1]) : Number.NaN;
  if (!(minor >= OLDEST_TARGET.minor && minor <= NEWEST_TARGET.minor)) {
    throw new UsageError(
      `--python-version must be a version from ${formatVersion(OLDEST_TARGET)} to ` +
        `${formatVersion(NEWEST_TARGET)}, such as 3.11; got '${text}'`,
    );
  }
  return { major: 3, minor };
}

export type TargetSource = 'option' | 'context_python' | 'default';

export interface TargetChoice {
  version: PythonVersion;
  source: TargetSource;
  /** The interpreter whose version was taken. */
  python?: string;
}

/** The `context_python` setting of a database, read without writing to it; null when unset or unreadable. */
async function readContextPythonSetting(databaseFile: string): Promise<string | null> {
  // Loaded here: `check` on files outside a database directory never needs SQLite.
  const { default: Database } = await import('better-sqlite3');
  let conn: InstanceType<typeof Database> | undefined;
  try {
    conn = new Database(databaseFile, { readonly: true, fileMustExist: true });
    const row = conn.prepare("SELECT value FROM metameta WHERE key = 'context_python'").get() as
      | { value: unknown }
      | undefined;
    const value = row?.value;
    return value === null || value === undefined || String(value).trim() === '' ? null : String(value).trim();
  } catch {
    return null;
  } finally {
    conn?.close();
  }
}

/** Chooses the target per file, probing each database's interpreter at most once. */
export class TargetResolver {
  private readonly byDirectory = new Map<string, Promise<TargetChoice>>();
  /** One line per interpreter that could not be used, for the user. */
  readonly notes: string[] = [];

  constructor(
    private readonly opts: {
      explicit?: PythonVersion;
      fallback?: PythonVersion;
      cwd?: string;
      probeTimeoutMs?: number;
    } = {},
  ) {}

  async forFile(file: string): Promise<TargetChoice> {
    if (this.opts.explicit) return { version: this.opts.explicit, source: 'option' };
    const cwd = this.opts.cwd ?? process.cwd();
    const fileDir = path.dirname(path.resolve(cwd, file));
    const databaseDir = [fileDir, cwd].find((dir) => existsSync(path.join(dir, DATABASE_FILE)));
    if (databaseDir === undefined) return this.fallback();
    let choice = this.byDirectory.get(databaseDir);
    if (!choice) {
      choice = this.fromDatabase(databaseDir);
      this.byDirectory.set(databaseDir, choice);
    }
    return choice;
  }

  private fallback(): TargetChoice {
    return { version: this.opts.fallback ?? DEFAULT_TARGET, source: 'default' };
  }

  private async fromDatabase(databaseDir: string): Promise<TargetChoice> {
    const python = await readContextPythonSetting(path.join(databaseDir, DATABASE_FILE));
    if (python === null) return this.fallback();
    const { InterpreterProblem, probePython } = await import('../context/interpreter.js');
    try {
      const info = await probePython(python, { timeoutMs: this.opts.probeTimeoutMs });
      const [, minor] = info.version_info;
      const version = { major: 3 as const, minor: Math.min(minor, NEWEST_TARGET.minor) };
      return { version, source: 'context_python', python };
    } catch (err) {
      if (!(err instanceof InterpreterProblem)) throw err;
      const fallback = this.fallback();
      this.notes.push(
        `context_python ${err.python} ${err.problem}: checking for Python ${formatVersion(fallback.version)} instead`,
      );
      return fallback;
    }
  }
}

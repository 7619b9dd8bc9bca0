/**
 * Safe replacement of a database's live context.py (`amore-proto context install NEW_FILE`).
 *
 * The same rule as the reference's editor: errors block, warnings do not. The new file must pass
 * the offline check and then load in the database's own interpreter (which sees what the check
 * cannot: imports, code that builds variables); only then does it replace context.py, in one
 * rename, with the previous version kept in context_history/. The variables table is updated as
 * read-context does. Until the rename nothing in the database directory has changed.
 */
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  copyFileSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { CliError } from '../cli/errors.js';
import type { ContextMessage, LoadProblem } from '../context/protocol.js';
import { describeContext } from '../context/describe.js';
import { requireContextPython } from '../context/interpreter.js';
import { CONTEXT_FILE, DatabaseDir } from '../database-dir.js';
import { numberSetting } from '../db/config-keys.js';
import type { DamnitDb } from '../db/database.js';
import type { FileReport } from './diagnostics.js';
import { NEWEST_TARGET } from './target-python.js';
import type { ContextValidator } from './validator.js';
import { programName } from '../program-name.js';

/** Where earlier versions of context.py are kept, in the database directory. */
export const CONTEXT_HISTORY_DIR = 'context_history';

/** A database directory whose context file is a staged copy, so the real loader reads that one. */
class StagedContextDir extends DatabaseDir {
  constructor(
    root: string,
    private readonly stagedFile: string,
  ) {
    super(root);
  }

  override get contextFile(): string {
    return this.stagedFile;
  }
}

export type InstallOutcome =
  | { installed: false; stage: 'check'; report: FileReport }
  | { installed: false; stage: 'load'; report: FileReport; problems: LoadProblem[]; traceback: string | null }
  | {
      installed: true;
      report: FileReport;
      context: ContextMessage;
      /** Problems that fail or skip only their variable at run time, which the check did not show. */
      warnings: LoadProblem[];
      /** The previous context.py's copy, or null when there was none. */
      backup: string | null;
      python: string;
      pythonVersion: string;
    };

/** `context-20261105T142233Z.py`, with a suffix if that second is taken. */
function backupPath(historyDir: string, now: Date): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  let candidate = path.join(historyDir, `context-${stamp}.py`);
  for (let n = 1; existsSync(candidate); n++) candidate = path.join(historyDir, `context-${stamp}-${n}.py`);
  return candidate;
}

function writeDurably(file: string, data: Uint8Array): void {
  writeFileSync(file, data, { flag: 'wx' });
  const fd = openSync(file, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export interface InstallOptions {
  /** Each line the context prints while the real loader imports it. */
  onOutput?: (line: string) => void;
  now?: Date;
}

export async function installContext(
  dbDir: DatabaseDir,
  db: DamnitDb,
  newFile: string,
  source: Buffer,
  validator: ContextValidator,
  opts: InstallOptions = {},
): Promise<InstallOutcome> {
  const python = await requireContextPython(db.metameta.get('context_python'));
  const [, minor] = python.info.version_info;
  const target = { major: 3 as const, minor: Math.min(minor, NEWEST_TARGET.minor) };
  const reading = validator.check(source, newFile, target);
  const report: FileReport = { file: newFile, target, diagnostics: reading.diagnostics, source: source.toString('utf8') };
  if (reading.diagnostics.some((d) => d.severity === 'error')) return { installed: false, stage: 'check', report };

  // Staged in the database directory: the same file system (so the rename is atomic) and the
  // same neighbouring modules for the real loader to import.
  const staged = path.join(dbDir.root, `.${CONTEXT_FILE}.install-${randomBytes(4).toString('hex')}`);
  try {
    writeDurably(staged, source);
    const result = await describeContext(new StagedContextDir(dbDir.root, staged), python.python, {
      timeoutMs: numberSetting(db.metameta, 'context_load_timeout') * 1000,
      onOutput: (_stream, line) => opts.onOutput?.(line),
    });
    const asNewFile = (p: LoadProblem): LoadProblem => ({ ...p, file: p.file === staged ? newFile : p.file });
    if (!result.ok) {
      return { installed: false, stage: 'load', report, problems: result.problems.map(asNewFile), traceback: result.traceback };
    }
    // They do not block, as they do not stop read-context (the check shows them as warnings).
    const shown = new Set(reading.diagnostics.map((d) => `${d.line}:${d.message}`));
    const warnings = result.context.static_problems
      .filter((p) => !shown.has(`${p.line}:${p.message}`))
      .map(asNewFile);

    let backup: string | null = null;
    if (existsSync(dbDir.contextFile)) {
      const historyDir = path.join(dbDir.root, CONTEXT_HISTORY_DIR);
      mkdirSync(historyDir, { recursive: true });
      backup = backupPath(historyDir, opts.now ?? new Date());
      copyFileSync(dbDir.contextFile, backup);
      chmodSync(staged, statSync(dbDir.contextFile).mode & 0o7777);
    }
    renameSync(staged, dbDir.contextFile);
    try {
      db.upsertVariables(result.context.variables);
    } catch (err) {
      throw new CliError(
        `${CONTEXT_FILE} was installed, but the variables table could not be updated ` +
          `(${(err as Error).message}): run '${programName()} read-context'`,
      );
    }
    return {
      installed: true,
      report,
      context: result.context,
      warnings,
      backup,
      python: python.python,
      pythonVersion: python.info.version,
    };
  } finally {
    rmSync(staged, { force: true });
  }
}

import { requireContextPython } from '../context/interpreter.js';
import type { DatabaseDir } from '../database-dir.js';
import { CliError } from '../cli/errors.js';
import { stringSetting, type SettingsSource } from '../db/config-keys.js';
import { programName } from '../program-name.js';
import type { DamnitDb } from '../db/database.js';
import type { RunEnvironment } from '../executors/executor.js';
import { proposalPath } from './proposal-path.js';
import { runTimeLimit } from './time-limit.js';

/**
 * Reads the settings that running a context depends on, and probes the interpreter once. The
 * runs' data is that of the database's proposal unless `proposalPath` says otherwise.
 */
export async function loadRunEnvironment(
  dir: DatabaseDir,
  db: DamnitDb,
  opts: { proposalPath?: string } = {},
): Promise<RunEnvironment> {
  const root = opts.proposalPath ?? proposalPath(dir, db);
  const python = await requireContextPython(db.metameta.get('context_python'));
  const limit = runTimeLimit(db.metameta);
  return {
    dir,
    python: python.python,
    proposalPath: root,
    timeoutMs: limit.ms,
    timeLimitSetting: limit.setting,
    mymdcSource: stringSetting(db.metameta, 'mymdc_source'),
    memoryLimit: memoryLimitSetting(db.metameta),
  };
}

/** `run_memory_limit`: GB (0: none), or 'auto' when unset. */
export function memoryLimitSetting(settings: SettingsSource): number | 'auto' {
  const value = settings.get('run_memory_limit');
  if (value === undefined || value === null || (typeof value === 'string' && value.trim() === '')) return 'auto';
  const gb = Number(value);
  if (!Number.isFinite(gb) || gb < 0) {
    throw new CliError(
      `setting run_memory_limit is ${JSON.stringify(String(value))}, not a number of GB: ` +
        `set it with '${programName()} db-config --num run_memory_limit 16' (0 for no limit)`,
    );
  }
  return gb;
}

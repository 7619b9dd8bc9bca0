import { requireContextPython } from '../context/interpreter.js';
import type { DatabaseDir } from '../database-dir.js';
import { stringSetting } from '../db/config-keys.js';
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
  };
}

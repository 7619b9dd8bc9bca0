import { constants, existsSync } from 'node:fs';
import path from 'node:path';
import { CliError } from './cli/errors.js';
import { programName } from './program-name.js';
import { describeAccess, mayAccess } from './sharing.js';

export const DATABASE_FILE = 'runs.sqlite';
export const CONTEXT_FILE = 'context.py';

/** The files of one DAMNIT database directory (by convention `<proposal>/usr/Shared/amore/`). */
export class DatabaseDir {
  readonly root: string;

  constructor(root: string) {
    this.root = path.resolve(root);
  }

  get databaseFile(): string {
    return path.join(this.root, DATABASE_FILE);
  }

  get contextFile(): string {
    return path.join(this.root, CONTEXT_FILE);
  }

  get extractedDataDir(): string {
    return path.join(this.root, 'extracted_data');
  }

  /** `extracted_data/p<P>_r<R>.h5`, with no zero padding. */
  runDataFile(proposal: number, run: number): string {
    return path.join(this.extractedDataDir, `p${proposal}_r${run}.h5`);
  }

  get logFile(): string {
    return path.join(this.root, 'amore.log');
  }

  get slurmLogsDir(): string {
    return path.join(this.root, 'slurm_logs');
  }

  /** `process_logs/`: one log per run, `r<R>-p<P>.out`, appended to by every processing of it (runs/process-log.ts; Slurm jobs write theirs there directly), which DAMNIT's GUI opens. */
  get processLogsDir(): string {
    return path.join(this.root, 'process_logs');
  }

  processLogFile(run: number, proposal: number): string {
    return path.join(this.processLogsDir, `r${run}-p${proposal}.out`);
  }

  get supervisordConfig(): string {
    return path.join(this.root, 'supervisord.conf');
  }

  /** The lock a running backend holds (scheduler/listener-claim.ts); never delete it while one runs. */
  get listenerLockFile(): string {
    return path.join(this.root, '.damnit-listener.lock');
  }

  get supervisordLog(): string {
    return path.join(this.root, 'supervisord.log');
  }

  /** The proposal root by convention: three levels above `usr/Shared/amore`. */
  get conventionalProposalPath(): string {
    return path.resolve(this.root, '..', '..', '..');
  }

  hasDatabase(): boolean {
    return existsSync(this.databaseFile);
  }
}

/** The database directory a command runs in; fails clearly when there is no database there. */
export function requireDatabaseDir(dir: string = process.cwd()): DatabaseDir {
  const db = new DatabaseDir(dir);
  if (!db.hasDatabase() && existsSync(db.root) && !mayAccess(db.root, constants.R_OK | constants.X_OK)) {
    throw new CliError(`cannot read ${db.root} (${describeAccess(db.root)}): this database is not shared with you`);
  }
  if (!db.hasDatabase()) {
    throw new CliError(
      `no ${DATABASE_FILE} in ${db.root}: run this in a DAMNIT database directory ` +
        `(usr/Shared/amore), or create one there with '${programName()} proposal <number>'`,
    );
  }
  return db;
}

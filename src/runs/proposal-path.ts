/**
 * Where a proposal's data is (the root holding raw/, proc/, usr/). For the database's own
 * proposal: the `proposal_path` setting, else three levels above a database directory at its
 * conventional place `<proposal>/usr/Shared/amore`, else the facility's layout. For another
 * proposal (`reprocess --proposal`): the facility's layout, `<root>/<instrument>/<cycle>/p<NNNNNN>`
 * under /gpfs/exfel/exp, or under `XFEL_DATA_ROOT` when set (as the reference's Python API reads it).
 */
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { CliError } from '../cli/errors.js';
import type { DamnitDb } from '../db/database.js';
import type { DatabaseDir } from '../database-dir.js';
import { programName } from '../program-name.js';

export const FACILITY_DATA_ROOT = '/gpfs/exfel/exp';

export function facilityDataRoot(): string {
  return process.env.XFEL_DATA_ROOT || FACILITY_DATA_ROOT;
}

/** `p001234`, a proposal's directory name at the facility. */
export function proposalDirName(proposal: number): string {
  return `p${String(proposal).padStart(6, '0')}`;
}

function subdirectories(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory() || e.isSymbolicLink())
      .map((e) => e.name)
      .sort();
  } catch {
    return [];
  }
}

/** The facility's directory of a proposal, or null when it is not there. */
export function findFacilityProposal(proposal: number): string | null {
  const root = facilityDataRoot();
  const name = proposalDirName(proposal);
  for (const instrument of subdirectories(root)) {
    for (const cycle of subdirectories(path.join(root, instrument))) {
      const candidate = path.join(root, instrument, cycle, name);
      if (existsSync(candidate)) return candidate;
    }
  }
  return null;
}

/** Whether a database directory sits at its conventional place, `<proposal>/usr/Shared/amore`. */
export function isConventionalDatabaseDir(dir: DatabaseDir): boolean {
  return dir.root.split(path.sep).slice(-3).join('/') === 'usr/Shared/amore';
}

/** The proposal root of the database's own proposal, or why it cannot be found. */
export function locateProposal(dir: DatabaseDir, db: DamnitDb): { path: string } | { problem: string } {
  const configured = db.metameta.get('proposal_path');
  if (typeof configured === 'string' && configured !== '') return { path: path.resolve(dir.root, configured) };
  if (isConventionalDatabaseDir(dir)) return { path: dir.conventionalProposalPath };
  const proposal = Number(db.metameta.get('proposal'));
  const found = Number.isSafeInteger(proposal) && proposal > 0 ? findFacilityProposal(proposal) : null;
  if (found !== null) return { path: found };
  const where = Number.isSafeInteger(proposal) && proposal > 0
    ? `, and there is no ${proposalDirName(proposal)} under ${facilityDataRoot()}/*/*/`
    : '';
  return {
    problem:
      `cannot tell where this proposal's data is: ${dir.root} is not <proposal>/usr/Shared/amore${where}; ` +
      `set it with '${programName()} db-config proposal_path /path/to/proposal'`,
  };
}

/** The proposal root of the database's own proposal; a clear error when it cannot be found. */
export function proposalPath(dir: DatabaseDir, db: DamnitDb): string {
  const located = locateProposal(dir, db);
  if ('problem' in located) throw new CliError(located.problem);
  return located.path;
}

/** The facility's directory of another proposal; a clear error when it is not there. */
export function otherProposalPath(proposal: number): string {
  const found = findFacilityProposal(proposal);
  if (found === null) {
    throw new CliError(
      `cannot find the data of proposal ${proposal}: there is no ${proposalDirName(proposal)} under ` +
        `${facilityDataRoot()}/*/*/ (set XFEL_DATA_ROOT if proposals are kept elsewhere)`,
    );
  }
  return found;
}

/** `raw/r0042` under the proposal root: its existence is what makes a run available. */
export function rawRunDir(proposalRoot: string, run: number): string {
  return path.join(proposalRoot, 'raw', `r${String(run).padStart(4, '0')}`);
}

export function runExists(proposalRoot: string, run: number): boolean {
  return existsSync(rawRunDir(proposalRoot, run));
}

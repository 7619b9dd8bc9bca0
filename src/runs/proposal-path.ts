import { existsSync } from 'node:fs';
import path from 'node:path';
import type { DamnitDb } from '../db/database.js';
import type { DatabaseDir } from '../database-dir.js';

/** The proposal root (holding raw/, proc/, usr/): `proposal_path` when configured, else by convention. */
export function proposalPath(dir: DatabaseDir, db: DamnitDb): string {
  const configured = db.metameta.get('proposal_path');
  if (typeof configured === 'string' && configured !== '') return path.resolve(dir.root, configured);
  return dir.conventionalProposalPath;
}

/** `raw/r0042` under the proposal root: its existence is what makes a run available. */
export function rawRunDir(proposalRoot: string, run: number): string {
  return path.join(proposalRoot, 'raw', `r${String(run).padStart(4, '0')}`);
}

export function runExists(proposalRoot: string, run: number): boolean {
  return existsSync(rawRunDir(proposalRoot, run));
}

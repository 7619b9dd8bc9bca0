import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { contextTemplate } from '../../context/templates.js';
import { DatabaseDir } from '../../database-dir.js';
import type { DamnitDb } from '../../db/database.js';
import { facilityDataRoot, findFacilityProposal, proposalDirName } from '../../runs/proposal-path.js';
import { createDatabaseDirectory } from '../../sharing.js';
import { plural } from '../../text.js';
import { CliError } from '../errors.js';

interface InitOptions {
  proposal?: string;
  context?: string;
  like?: string;
}

/**
 * Settings of an earlier beamtime that do not carry over: its identity, its own location, and
 * a Slurm reservation, which belongs to one beamtime (an expired one makes every job fail).
 */
const NOT_COPIED = new Set(['db_id', 'proposal', 'data_format_version', 'proposal_path', 'slurm_reservation']);

function proposalNumber(text: string, what: string): number {
  if (!/^\d+$/.test(text) || Number(text) <= 0) throw new CliError(`${what} must be a positive integer, got '${text}'`);
  return Number(text);
}

/** A proposal's conventional database directory, where the facility keeps the proposal. */
function facilityDatabaseDir(proposal: number): string {
  const root = findFacilityProposal(proposal);
  if (root === null) {
    throw new CliError(
      `cannot find proposal ${proposal}: there is no ${proposalDirName(proposal)} under ${facilityDataRoot()}/*/*/ ` +
        `(give the directory instead, or set XFEL_DATA_ROOT)`,
    );
  }
  return path.join(root, 'usr', 'Shared', 'amore');
}

/** The proposal a directory belongs to, from a `p001234` component of its path. */
function proposalOfPath(dir: string): number | null {
  const named = dir.split(path.sep).reverse().find((part) => /^p\d+$/.test(part));
  return named === undefined ? null : Number(named.slice(1));
}

/** The instrument of a directory at the facility: `<root>/<instrument>/<cycle>/p<N>/...`. */
function instrumentOfPath(dir: string): string | null {
  const relative = path.relative(facilityDataRoot(), dir);
  if (relative === '' || relative.startsWith('..') || path.isAbsolute(relative)) return null;
  return relative.split(path.sep)[0] ?? null;
}

function requireFile(file: string): string {
  if (!existsSync(file) || !statSync(file).isFile()) throw new CliError(`${file} is not a file`);
  return file;
}

/** An earlier database directory, given as a directory or as its proposal's number. */
function likeDirectory(text: string): DatabaseDir {
  if (existsSync(text) && statSync(text).isDirectory()) return new DatabaseDir(text);
  if (/^\d+$/.test(text)) return new DatabaseDir(facilityDatabaseDir(Number(text)));
  throw new CliError(`${text} is not a proposal number or DAMNIT database directory`);
}

/** Copies the settings and user-editable variables of an earlier database; says what it copied. */
function copyFromEarlier(earlier: DamnitDb, db: DamnitDb): string {
  const settings = earlier.metameta
    .typedEntries()
    .filter(([key, typed]) => !NOT_COPIED.has(key) && !(typed.value instanceof Uint8Array) && typed.value !== null);
  const userVariables = earlier.userVariables();
  db.connection.transaction(() => {
    for (const [key, typed] of settings) db.metameta.set(key, typed.value as string | number | bigint);
  }).immediate();
  db.addUserVariables(userVariables);
  const keys = settings.map(([key]) => key);
  return `${plural(keys.length, 'setting')}${keys.length > 0 ? ` (${keys.join(', ')})` : ''} and ` +
    `${plural(userVariables.length, 'user-editable variable')}`;
}

export function register(program: Command): void {
  program
    .command('init')
    .description('Set up a new DAMNIT folder: the directory, its database and a starting context.py')
    .argument('<proposal_or_dir>', 'Either a proposal number or a directory path.')
    .option('--proposal <proposal>', 'Proposal number (if not in a proposal directory)')
    .option('--like <proposal_or_dir>', 'Proposal number or DAMNIT directory to copy context file, settings & user-editable variables from')
    .option('--context <file>', 'Context file to copy to the new location')
    .action(async (target: string, opts: InitOptions) => {
      const { openDatabase } = await import('../../db/database.js');
      let root: string;
      let proposal: number | null;
      if (/^\d+$/.test(target)) {
        proposal = proposalNumber(target, 'the proposal');
        root = facilityDatabaseDir(proposal);
      } else {
        root = path.resolve(target);
        proposal = opts.proposal !== undefined ? proposalNumber(opts.proposal, '--proposal') : proposalOfPath(root);
      }
      const like = opts.like === undefined ? null : likeDirectory(opts.like);
      if (like !== null) {
        requireFile(like.contextFile);
        requireFile(like.databaseFile);
      }
      const contextSource = opts.context !== undefined ? requireFile(opts.context) : (like?.contextFile ?? null);

      const dir = new DatabaseDir(root);
      if (proposal === null && !dir.hasDatabase()) {
        throw new CliError('--proposal is required if not in a proposal directory');
      }
      console.log(`Setting up DAMNIT in ${dir.root}`);
      createDatabaseDirectory(dir.root);

      const isNew = !dir.hasDatabase();
      const db = openDatabase(dir, { create: isNew });
      try {
        if (isNew) {
          db.metameta.set('proposal', proposal as number);
          console.log(`Created ${dir.databaseFile} for proposal ${proposal}`);
        } else {
          console.log(`Kept the database already there (proposal ${String(db.metameta.get('proposal'))})`);
        }

        if (existsSync(dir.contextFile)) {
          console.log(`Kept the ${path.basename(dir.contextFile)} already there`);
        } else if (contextSource !== null) {
          // Written afresh, not copied, so that it takes this directory's modes, not the source's.
          writeFileSync(dir.contextFile, readFileSync(contextSource));
          console.log(`Copied ${contextSource} to ${dir.contextFile}`);
        } else {
          const template = contextTemplate(instrumentOfPath(dir.root));
          writeFileSync(dir.contextFile, template.text);
          console.log(`Wrote a starting ${path.basename(dir.contextFile)} for ${template.label}`);
        }

        // As the reference: an earlier beamtime's settings only go into a database made now.
        if (like !== null && isNew) {
          const earlier = openDatabase(like, { readonly: true });
          try {
            console.log(`Copied ${copyFromEarlier(earlier, db)} from ${like.databaseFile}`);
          } finally {
            earlier.close();
          }
        } else if (like !== null) console.log(`Copied no settings or variables: the database was there already`);
      } finally {
        db.close();
      }
    });
}

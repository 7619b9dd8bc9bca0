import { type Command, InvalidArgumentError } from 'commander';
import { DatabaseDir, requireDatabaseDir } from '../../database-dir.js';
import { pythonStr } from '../../db/python-format.js';

/** argparse's `type=int`, with its wording, plus the one rule a proposal number has. */
function parseProposalNumber(text: string): number {
  if (!/^\s*\+?\d+\s*$/.test(text)) throw new InvalidArgumentError(`invalid int value: '${text}'`);
  const proposal = Number.parseInt(text, 10);
  if (!Number.isSafeInteger(proposal) || proposal <= 0) {
    throw new InvalidArgumentError(`a proposal number is a positive integer, got '${text}'`);
  }
  return proposal;
}

export function register(program: Command): void {
  program
    .command('proposal')
    .description(
      'Get or set the proposal number to collect metadata from. In a directory without a ' +
        'database, `proposal N` creates a blank database for proposal N.',
    )
    .argument('[proposal]', 'proposal number to set, e.g. 1234', parseProposalNumber)
    .action(async (proposal: number | undefined) => {
      const { openDatabase } = await import('../../db/database.js');
      const cwd = new DatabaseDir(process.cwd());
      if (proposal === undefined) {
        const db = openDatabase(requireDatabaseDir(cwd.root), { readonly: true });
        try {
          const current = db.metameta.getTyped('proposal');
          console.log(`Current proposal number: ${current === undefined ? 'None' : pythonStr(current)}`);
        } finally {
          db.close();
        }
        return;
      }

      if (!cwd.hasDatabase()) {
        const db = openDatabase(cwd, { create: true });
        try {
          db.metameta.set('proposal', proposal);
        } finally {
          db.close();
        }
        console.log(`Created a blank database for proposal ${proposal} in ${cwd.databaseFile}`);
        return;
      }

      const db = openDatabase(cwd);
      try {
        const current = db.metameta.getTyped('proposal');
        if (current?.storage === 'integer' && Number(current.value) === proposal) {
          console.log(`No change - proposal ${proposal} already set`);
          return;
        }
        db.metameta.set('proposal', proposal);
        console.log(`Changed proposal to ${proposal} (was ${current === undefined ? 'None' : pythonStr(current)})`);
      } finally {
        db.close();
      }
    });
}

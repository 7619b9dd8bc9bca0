import type { Command } from 'commander';
import { requireDatabaseDir } from '../../database-dir.js';

export function register(program: Command): void {
  program
    .command('new-id')
    .description(
      'Set a new (random) database ID. Useful if a copy has been made which should not share ' +
        'an ID with the original. Prints the new ID.',
    )
    .argument('[dir]', 'path to the database directory (default: the current directory)')
    .action(async (dir: string | undefined) => {
      const { newDbId, openDatabase } = await import('../../db/database.js');
      const db = openDatabase(requireDatabaseDir(dir ?? process.cwd()));
      try {
        const id = newDbId();
        db.metameta.set('db_id', id);
        console.log(id);
      } finally {
        db.close();
      }
    });
}

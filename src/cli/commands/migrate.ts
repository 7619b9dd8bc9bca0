import type { Command } from 'commander';
import { requireDatabaseDir } from '../../database-dir.js';
import { DATA_FORMAT_VERSION } from '../../db/schema.js';

export function register(program: Command): void {
  program
    .command('migrate')
    .description(
      `Upgrade the database in the current directory to data format ${DATA_FORMAT_VERSION}. ` +
        'Formats 1 to 3 are also upgraded whenever a command opens the database; ' +
        'this does it explicitly and says what changed.',
    )
    .action(async () => {
      const { openDatabase } = await import('../../db/database.js');
      const dir = requireDatabaseDir();
      // Opening applies any pending upgrade, one transaction per step.
      const db = openDatabase(dir);
      try {
        const { upgrade, journal } = db.schema;
        if (journal === 'switched') {
          console.log(`Switched ${dir.databaseFile} from WAL to SQLite's rollback journal, which readers on other hosts and without write access can use`);
        } else if (journal === 'still-wal') {
          process.stderr.write(
            `Warning: ${dir.databaseFile} stays in WAL mode while another process has it open; run migrate again once it is closed\n`,
          );
        }
        if (upgrade === null) {
          console.log(`${dir.databaseFile} is already at data format ${DATA_FORMAT_VERSION}; nothing to do`);
          return;
        }
        console.log(`Upgraded ${dir.databaseFile} from data format ${upgrade.fromVersion} to ${upgrade.toVersion}:`);
        for (const step of upgrade.steps) console.log(`  format ${step.toVersion}: ${step.description}`);
      } finally {
        db.close();
      }
    });
}

/** `table`: the run table of the current database directory on standard output. */
import { requireDatabaseDir } from '../database-dir.js';
import { openDatabase } from '../db/database.js';
import { wantColor } from '../validate/report.js';
import { type TableFormat, writeTable } from './formats.js';
import { tableColumns, tableRows } from './read-table.js';

export async function showTable(opts: { format: TableFormat; long: boolean; match: readonly string[] }): Promise<void> {
  const db = openDatabase(requireDatabaseDir(), { readonly: true });
  try {
    const columns = tableColumns(db, opts.match);
    const rows = tableRows(db.connection, columns, opts.match.length > 0);
    await writeTable(opts.format, columns, rows, { long: opts.long, color: opts.format === 'text' && wantColor(process.stdout) });
  } finally {
    db.close();
  }
}

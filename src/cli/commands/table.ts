import type { Command } from 'commander';
import { requireDatabaseDir } from '../../database-dir.js';
import { openDatabase } from '../../db/database.js';

const MAX_CELL = 32;

/** A summary as text: blobs are named by kind, since a terminal cannot show a thumbnail. */
function formatCell(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (Buffer.isBuffer(value)) {
    if (value.subarray(0, 8).equals(Buffer.from('\x89PNG\r\n\x1a\n', 'latin1'))) return '<image>';
    if (value.subarray(0, 6).equals(Buffer.from('\x93NUMPY', 'latin1'))) return '<array>';
    if (value.length === 16) return `${value.readDoubleLE(0)}+${value.readDoubleLE(8)}j`;
    return `<${value.length} bytes>`;
  }
  if (typeof value === 'number' && !Number.isInteger(value)) return String(Number(value.toPrecision(6)));
  const text = String(value).replace(/\s+/g, ' ');
  return text.length > MAX_CELL ? `${text.slice(0, MAX_CELL - 1)}…` : text;
}

export function register(program: Command): void {
  program
    .command('table')
    .description('Print the run table: one row per run, one column per variable (the summaries the GUI shows)')
    .action(() => {
      const dir = requireDatabaseDir();
      const db = openDatabase(dir, { readonly: true });
      try {
        const titles = new Map(
          db.connection
            .prepare<[], { name: string; title: string | null }>('SELECT name, title FROM variables ORDER BY rowid')
            .all()
            .map((v) => [v.name, v.title ?? v.name]),
        );
        const rows = db.connection.prepare('SELECT * FROM runs ORDER BY proposal, run').all() as Record<string, unknown>[];
        const names = [...titles.keys()].filter((name) => rows.length === 0 || name in (rows[0] as object));
        const header = ['Run', ...names.map((n) => titles.get(n) ?? n)];
        const body = rows.map((row) => [String(row.run), ...names.map((n) => formatCell(row[n]))]);
        const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] ?? '').length)));
        const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
        console.log(line(header));
        console.log(line(widths.map((w) => '-'.repeat(w))));
        for (const r of body) console.log(line(r));
        if (rows.length === 0) console.log('(no runs yet)');
      } finally {
        db.close();
      }
    });
}

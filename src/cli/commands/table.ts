import { type Command, Option } from 'commander';
import type { TableFormat } from '../../table/formats.js';

interface TableOptions {
  format: TableFormat;
  json?: boolean;
  csv?: boolean;
  markdown?: boolean;
  long?: boolean;
  match: string[];
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function register(program: Command): void {
  program
    .command('table')
    .description('Print the run table: one row per run, one column per variable (the summaries the GUI shows)')
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'markdown', 'csv', 'json']).default('text'))
    .addOption(new Option('--json', 'same as --format json').conflicts(['csv', 'markdown']))
    .addOption(new Option('--csv', 'same as --format csv').conflicts(['markdown']))
    .option('--markdown', "same as --format markdown (the GUI's Markdown export)")
    .option('--long', 'error messages in full (not only their class), and no cell cut short')
    .option(
      '--match <match>',
      'only the variables whose name or title contains this (case-insensitive, repeatable)',
      collect,
      [],
    )
    .action(async (opts: TableOptions) => {
      const format: TableFormat = opts.json ? 'json' : opts.csv ? 'csv' : opts.markdown ? 'markdown' : opts.format;
      const { showTable } = await import('../../table/show-table.js');
      await showTable({ format, long: Boolean(opts.long), match: opts.match });
    });
}

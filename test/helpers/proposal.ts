/**
 * A sample proposal with a database directory at the conventional place, and the rows `reprocess`
 * records there, for end-to-end tests through the CLI.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { runCli } from './cli.js';
import { TEST_PYTHON } from './paths.js';
import { makeSampleProposal } from './python.js';

/**
 * `root` with `runs` sample runs (20 trains each, `generatorArgs` added) and a database directory
 * `<root>/usr/Shared/amore` for proposal 1234 holding `context`, run by the test interpreter.
 */
export async function makeProposal(
  root: string,
  runs: number,
  context: string,
  generatorArgs: string[] = [],
): Promise<{ root: string; db: string }> {
  await makeSampleProposal(root, ['--runs', String(runs), '--trains', '20', ...generatorArgs]);
  const db = path.join(root, 'usr', 'Shared', 'amore');
  mkdirSync(db, { recursive: true });
  writeFileSync(path.join(db, 'context.py'), context);
  const created = await runCli(['proposal', '1234'], { cwd: db });
  assert.equal(created.code, 0, created.stderr);
  const configured = await runCli(['db-config', 'context_python', TEST_PYTHON], { cwd: db });
  assert.equal(configured.code, 0, configured.stderr);
  return { root, db };
}

export interface Row {
  run: number;
  name: string;
  value: unknown;
  timestamp: number;
  attributes: string | null;
}

/** Every run_variables row of a database directory. */
export function rows(db: string): Row[] {
  const conn = new Database(path.join(db, 'runs.sqlite'), { readonly: true });
  try {
    return conn.prepare('SELECT run, name, value, timestamp, attributes FROM run_variables ORDER BY run, name').all() as Row[];
  } finally {
    conn.close();
  }
}

/** The recorded value of one variable for one run (which must have a row). */
export function valueOf(db: string, run: number, name: string): unknown {
  const row = rows(db).find((r) => r.run === run && r.name === name);
  assert.ok(row, `no row for r${run} ${name}`);
  return row.value;
}

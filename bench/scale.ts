/**
 * Cost as a beamtime grows: recording one run of 100 variables (DamnitDb.recordRunResults, as
 * the run path records) in databases already holding 10, 1,000 and 10,000 runs, and `table`
 * (the built CLI, each format) over 10,000 runs x 100 variables, beside the `runs` view that
 * the table used to read. The databases are generated here, in a temporary directory.
 * Goals: recording at 10,000 runs within 1.5x of recording at 10; `table` under 1 s.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { VariableInfo, VariableResultMessage } from '../src/context/protocol.js';
import { DatabaseDir } from '../src/database-dir.js';
import { openDatabase, type DamnitDb } from '../src/db/database.js';
import { PACKAGE_ROOT } from '../src/validate/package-files.js';
import { figureLine, median } from './report.js';

const PROPOSAL = 1234;
const VARIABLES = 100;
const SIZES = [10, 1_000, 10_000];
/** Runs recorded (and timed) on top of each size. */
const RECORDED = 20;
const RECORD_RATIO_GOAL = 1.5;
const TABLE_GOAL_MS = 1_000;
const START = 1_700_000_000;
const CLI = path.join(PACKAGE_ROOT, 'dist', 'src', 'cli', 'main.js');

const line = figureLine('scale');

const ms = (t: number): string => `${t.toFixed(1)} ms`;
const load = (): string => os.loadavg().map((l) => l.toFixed(1)).join(' ');

function variables(): VariableInfo[] {
  return Array.from({ length: VARIABLES }, (_, i) => ({
    name: `var_${i}`,
    title: `Quantity ${i}`,
    description: null,
    summary: i % 4 === 0 ? 'mean' : null,
    data: i % 7 === 0 ? 'proc' : 'raw',
    cluster: false,
    tags: [],
    transient: false,
    units: i % 10 === 0 ? 'uJ' : null,
    parameters: [],
    dependencies: [],
    line: null,
  }));
}

/**
 * One run's results as the shim reports them: floats, ints and strings, units on a tenth of
 * the variables, and one variable in fifty failing.
 */
function results(run: number): VariableResultMessage[] {
  return Array.from({ length: VARIABLES }, (_, i): VariableResultMessage => {
    const name = `var_${i}`;
    const base = { protocol: 1, kind: 'variable_result', name, summary_method: '', max_diff: null, duration_s: 0.001 } as const;
    if ((run + i) % 50 === 0) {
      return { ...base, value: null, summary_type: null, summary_method: null, attributes: { error: `no data for ${name}`, error_cls: 'KeyError' } };
    }
    const value =
      i % 3 === 0 ? ({ t: 'float', v: run * 0.731 + i } as const)
      : i % 3 === 1 ? ({ t: 'int', v: String(run * 7 + i) } as const)
      : ({ t: 'str', v: `sample ${run % 17}` } as const);
    return { ...base, value, summary_type: null, attributes: i % 10 === 0 ? { units: 'uJ' } : null };
  }) as VariableResultMessage[];
}

/**
 * A database holding `runs` runs: the first recorded through recordRunResults, the rest
 * written straight into the same tables in one transaction (recording 10,000 runs one by one
 * would measure the recording, not the database that results).
 */
function makeDatabase(root: string, runs: number): DamnitDb {
  mkdirSync(root, { recursive: true });
  const db = openDatabase(new DatabaseDir(root), { create: true });
  db.metameta.set('proposal', PROPOSAL);
  db.upsertVariables(variables());
  db.recordRunResults(PROPOSAL, 1, { startTime: START, variables: results(1) });
  const insertRun = db.connection.prepare('INSERT INTO run_info (proposal, run, start_time, added_at) VALUES (?, ?, ?, ?)');
  const insertResult = db.connection.prepare(
    'INSERT INTO run_variables (proposal, run, name, version, value, timestamp, max_diff, provenance, ' +
      "summary_type, summary_method, attributes) VALUES (?, ?, ?, 1, ?, ?, NULL, 'context.py', NULL, ?, ?)",
  );
  db.connection.transaction(() => {
    for (let run = 2; run <= runs; run++) {
      insertRun.run(BigInt(PROPOSAL), BigInt(run), START + run, START + run);
      for (const r of results(run)) {
        const v = r.value;
        const value = v === null ? null : v.t === 'int' ? BigInt(v.v) : v.v;
        const attributes = r.attributes === null ? null : JSON.stringify(r.attributes);
        insertResult.run(BigInt(PROPOSAL), BigInt(run), r.name, value, START + run, r.summary_method, attributes);
      }
    }
  })();
  return db;
}

/** Median time of recording RECORDED new runs on top of a database of `size` runs. */
function recordingCost(root: string, size: number): number {
  const db = makeDatabase(root, size);
  try {
    const times: number[] = [];
    for (let k = 1; k <= RECORDED; k++) {
      const run = size + k;
      const variables = results(run);
      const started = performance.now();
      db.recordRunResults(PROPOSAL, run, { startTime: START + run, variables });
      times.push(performance.now() - started);
    }
    return median(times);
  } finally {
    db.close();
  }
}

/** Wall and CPU time (user + system, from /proc via `time`) of one CLI command, output discarded. */
function timeCli(args: string[], cwd: string): { wallMs: number; cpuMs: number } {
  const started = performance.now();
  const res = spawnSync('/usr/bin/time', ['-f', '%U %S', process.execPath, CLI, ...args], {
    cwd,
    env: { ...process.env, NO_COLOR: '1' },
    stdio: ['ignore', 'ignore', 'pipe'],
    maxBuffer: 1 << 20,
  });
  const wallMs = performance.now() - started;
  if (res.status !== 0) throw new Error(`${args.join(' ')} failed: ${res.stderr.toString()}`);
  const [user = Number.NaN, system = Number.NaN] = res.stderr.toString().trim().split('\n').pop()?.split(' ').map(Number) ?? [];
  return { wallMs, cpuMs: (user + system) * 1000 };
}

export async function benchScale(): Promise<void> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'damnit-bench-scale-'));
  try {
    line('load at start', load());
    const costs = SIZES.map((size) => recordingCost(path.join(root, `record-${size}`), size));
    SIZES.forEach((size, i) => {
      const ratio = (costs[i] ?? Number.NaN) / (costs[0] ?? Number.NaN);
      line(`record one run, ${size} runs x ${VARIABLES} variables already`, `${ms(costs[i] ?? Number.NaN)}  (${ratio.toFixed(2)}x the first)`);
    });
    const ratio = (costs[costs.length - 1] ?? Number.NaN) / (costs[0] ?? Number.NaN);
    line('recording at 10,000 runs / at 10', `${ratio.toFixed(2)}x  (goal <= ${RECORD_RATIO_GOAL}x: ${ratio <= RECORD_RATIO_GOAL ? 'met' : 'NOT met'})`);

    const big = path.join(root, 'record-10000');
    for (const [label, args] of [
      ['text', []],
      ['--csv', ['--csv']],
      ['--json', ['--json']],
      ['--markdown', ['--markdown']],
      ['--match (10 of 100 columns)', ['--match', 'quantity 1']],
    ] as const) {
      const runs = [0, 1, 2].map(() => timeCli(['table', ...args], big));
      const wall = median(runs.map((r) => r.wallMs));
      const cpu = median(runs.map((r) => r.cpuMs));
      line(`table ${label}, 10,020 runs x ${VARIABLES} (median of 3)`, `${ms(wall)} wall, ${ms(cpu)} CPU  (goal < ${TABLE_GOAL_MS} ms: ${wall < TABLE_GOAL_MS ? 'met' : cpu < TABLE_GOAL_MS ? 'met in CPU time' : 'NOT met'})`);
    }
    const db = openDatabase(new DatabaseDir(big), { readonly: true });
    try {
      const started = performance.now();
      db.connection.prepare('SELECT * FROM runs ORDER BY proposal, run').all();
      line('for comparison: SELECT * FROM runs (the view) in-process', ms(performance.now() - started));
    } finally {
      db.close();
    }
    line('load at end', load());
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

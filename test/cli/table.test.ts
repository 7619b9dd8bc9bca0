// `table` (src/cli/commands/table.ts, src/table/): every format from a real runs.sqlite holding
// the kinds of summaries, errors, units and comments DAMNIT stores.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { DatabaseDir } from '../../src/database-dir.js';
import { openDatabase } from '../../src/db/database.js';
import { failure, result, variable } from '../db/fixtures.js';
import { makeTempDir, runCli } from '../helpers/cli.js';

const tmp = makeTempDir('damnit-table-');
after(() => tmp.cleanup());

const PROPOSAL = 1234;
/** 2023-11-14 22:13:20 UTC */
const START = 1_700_000_000;
const UTC = { TZ: 'UTC' };

/** `.npy` bytes of a float64 array of shape (3,), as numpy writes them. */
function npyBytes(): Buffer {
  let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }";
  header = header.padEnd(128 - 10 - 1, ' ') + '\n';
  const prefix = Buffer.from([0x93, ...Buffer.from('NUMPY', 'latin1'), 1, 0, header.length & 0xff, header.length >> 8]);
  return Buffer.concat([prefix, Buffer.from(header, 'latin1'), Buffer.alloc(24)]);
}

function complexBytes(re: number, im: number): Buffer {
  const bytes = Buffer.alloc(16);
  bytes.writeDoubleLE(re, 0);
  bytes.writeDoubleLE(im, 8);
  return bytes;
}

const PNG = Buffer.concat([Buffer.from('\x89PNG\r\n\x1a\n', 'latin1'), Buffer.alloc(32)]);
const bytes = (b: Buffer) => ({ t: 'bytes', v: b.toString('base64') }) as const;

/** Three runs with results (one with a comment, one with failures) and a fourth without any. */
function makeDatabase(dir: string): string {
  mkdirSync(dir);
  const db = openDatabase(new DatabaseDir(dir), { create: true });
  try {
    db.metameta.set('proposal', PROPOSAL);
    db.upsertVariables([
      variable('energy', { title: 'Pulse energy' }),
      variable('pulses', { title: 'Pulses' }),
      variable('sample', { title: 'Sample' }),
      variable('image', { title: 'Detector image' }),
      variable('spectrum', { title: 'Spectrum' }),
      variable('phase', { title: 'Phase' }),
    ]);
    db.recordRunResults(PROPOSAL, 1, {
      startTime: START,
      variables: [
        result('energy', { t: 'float', v: 12.5 }, { attributes: { units: 'uJ' } }),
        result('pulses', { t: 'int', v: '300' }),
        result('sample', { t: 'str', v: 'Fe, "foil" | 10 um' }),
        result('image', bytes(PNG)),
        result('spectrum', bytes(npyBytes()), { summary_type: 'numpy' }),
        result('phase', bytes(complexBytes(1.5, -2)), { summary_type: 'complex' }),
        result('comment', { t: 'str', v: 'good shot' }),
      ],
    });
    db.recordRunResults(PROPOSAL, 2, {
      startTime: START + 60,
      variables: [
        failure('energy', "'SA1_XTD2_XGM/XGM/DOOCS' not found in run", 'SourceNameError'),
        result('pulses', { t: 'int', v: '0' }),
        failure('sample', 'no sample recorded', 'Skip'),
        result('phase', { t: 'float', v: 123456.0 }),
      ],
    });
    db.recordRunResults(PROPOSAL, 3, { startTime: START + 120, variables: [result('energy', { t: 'float', v: 0.000012 }, { attributes: { units: 'uJ' } })] });
    db.ensureRun(PROPOSAL, 4);
  } finally {
    db.close();
  }
  return dir;
}

const db = makeDatabase(path.join(tmp.dir, 'db'));

async function table(args: string[]): Promise<string> {
  const res = await runCli(['table', ...args], { cwd: db, env: UTC });
  assert.equal(res.code, 0, res.stderr);
  assert.equal(res.stderr, '');
  return res.stdout;
}

describe('table as text', () => {
  it('shows each kind of summary as the GUI does, units after numbers, the comment, and errors by class', async () => {
    const lines = (await table([])).split('\n');
    assert.match(lines[0] ?? '', /^Run +Comment +Pulse energy +Pulses +Sample +Detector image +Spectrum +Phase$/);
    const cells = (line: string | undefined) => (line ?? '').split(/ {2,}/);
    assert.deepEqual(cells(lines[2]), ['1', 'good shot', '12.5000 uJ', '300', 'Fe, "foil" | 10 um', '<image>', 'float64: (3,)', '(1.5-2j)']);
    assert.deepEqual(cells(lines[3]), ['2', '!SourceNameError', '0', 'skipped', '1.235e+05']);
    assert.deepEqual(cells(lines[4]), ['3', '1.200e-05 uJ']);
    assert.deepEqual(cells(lines[5]), ['4']);
    assert.equal(lines.length, 7);
  });

  it('--long gives the messages of errors', async () => {
    const out = await table(['--long']);
    assert.match(out, /^2 +!SourceNameError: 'SA1_XTD2_XGM\/XGM\/DOOCS' not found in run +0 +skipped: no sample recorded +1\.235e\+05$/m);
  });

  it('--match keeps the columns whose name or title contains a string, case-insensitively', async () => {
    const out = await table(['--match', 'ENERGY', '--match', 'spec']);
    assert.match(out.split('\n')[0] ?? '', /^Run +Comment +Pulse energy +Spectrum$/);
    assert.match(out, /^1 +good shot +12\.5000 uJ +float64: \(3,\)$/m);
  });

  it('a database without runs says so', async () => {
    const empty = path.join(tmp.dir, 'empty');
    mkdirSync(empty);
    openDatabase(new DatabaseDir(empty), { create: true }).close();
    const res = await runCli(['table'], { cwd: empty });
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stdout, 'Run\n---\n(no runs yet)\n');
    const json = await runCli(['table', '--json'], { cwd: empty });
    assert.deepEqual(JSON.parse(json.stdout), { columns: [], runs: [] });
  });
});

describe('table for programs', () => {
  it('--csv: the GUI export columns, raw values, quoted where CSV needs it, errors in their cells', async () => {
    assert.equal(
      await table(['--csv']),
      [
        'Proposal,Run,Timestamp,Comment,Pulse energy,Pulses,Sample,Detector image,Spectrum,Phase',
        '1234,1,22:13:20 14/11/2023,good shot,12.5,300,"Fe, ""foil"" | 10 um",<image>,"float64: (3,)",(1.5-2j)',
        '1234,2,22:14:20 14/11/2023,,!SourceNameError,0,skipped,,,123456.0',
        '1234,3,22:15:20 14/11/2023,,1.2e-05,,,,,',
        '1234,4,,,,,,,,',
        '',
      ].join('\n'),
    );
  });

  it('--json: one document, one run per line, values apart from units and errors', async () => {
    const out = await table(['--json']);
    const doc = JSON.parse(out) as { columns: { name: string; title: string }[]; runs: Record<string, unknown>[] };
    assert.deepEqual(doc.columns.map((c) => c.name), ['energy', 'pulses', 'sample', 'image', 'spectrum', 'phase']);
    assert.equal(doc.columns[0]?.title, 'Pulse energy');
    assert.deepEqual(doc.runs[0], {
      proposal: 1234,
      run: 1,
      start_time: START,
      comment: 'good shot',
      values: { energy: 12.5, pulses: 300, sample: 'Fe, "foil" | 10 um', image: '<image>', spectrum: 'float64: (3,)', phase: '(1.5-2j)' },
      units: { energy: 'uJ' },
      errors: {},
    });
    assert.deepEqual(doc.runs[1]?.errors, {
      energy: { class: 'SourceNameError', message: "'SA1_XTD2_XGM/XGM/DOOCS' not found in run" },
      sample: { class: 'Skip', message: 'no sample recorded' },
    });
    assert.deepEqual(doc.runs[1]?.values, { energy: null, pulses: 0, sample: null, phase: 123456 });
    assert.deepEqual(doc.runs[3], { proposal: 1234, run: 4, start_time: null, comment: null, values: {}, units: {}, errors: {} });
    assert.equal(out.split('\n').length, 2 + 4 + 2, 'a line per run between the header and the closing line');
  });

  it("--markdown: the GUI's export, a pipe table with unpadded cells", async () => {
    assert.equal(
      await table(['--markdown', '--match', 'pulse']),
      [
        '|Proposal|Run|Timestamp|Comment|Pulse energy|Pulses|',
        '|:-----------|:------|:--------------------|:----------|:-----------------|:---------|',
        '|1234|1|22:13:20 14/11/2023|good shot|12.5000|300|',
        '|1234|2|22:14:20 14/11/2023||!SourceNameError|0|',
        '|1234|3|22:15:20 14/11/2023||1.200e-05||',
        '|1234|4|||||',
        '',
      ].join('\n'),
    );
    assert.match(await table(['--markdown', '--match', 'sample']), /^\|1234\|1\|[^|]+\|good shot\|Fe, "foil" \\\| 10 um\|$/m);
  });

  it('two formats at once is a usage error', async () => {
    const res = await runCli(['table', '--json', '--csv'], { cwd: db });
    assert.equal(res.code, 2);
    assert.match(res.stderr, /^usage: amore-proto table \[options\]\namore-proto table: error: /);
  });
});

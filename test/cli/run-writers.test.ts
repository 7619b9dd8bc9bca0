/**
 * Issue 15: one writer per run file, across processes. Two `reprocess` and a `listen` write
 * different variables of the same runs at once, 50 rounds; after each round every value is in
 * both runs.sqlite and the run's HDF5 file (read back with h5py).
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { execa } from 'execa';
import { makeTempDir } from '../helpers/cli.js';
import { CLI_PATH, TEST_PYTHON } from '../helpers/paths.js';
import { eventually, makeDatabase, readLog, runLines, values } from '../listener/helpers.js';

const tmp = makeTempDir('damnit-run-writers-');
after(() => tmp.cleanup());

const ROUNDS = 50;
const RUNS = [1, 2];

/** The variables' values in each run's HDF5 file: {run: {name: value}}. */
async function fileValues(db: string): Promise<Record<string, Record<string, number>>> {
  const { stdout } = await execa(TEST_PYTHON, [
    '-c',
    String.raw`
import json, sys, h5py
out = {}
for run in sys.argv[2:]:
    with h5py.File("%s/extracted_data/p1234_r%s.h5" % (sys.argv[1], run), "r") as f:
        out[run] = {name: int(f[name + "/data"][()]) for name in ("alpha", "beta", "gamma") if name in f}
print(json.dumps(out))
`,
    db,
    ...RUNS.map(String),
  ]);
  return JSON.parse(stdout) as Record<string, Record<string, number>>;
}

describe('two reprocess and a listen writing the same runs at once', () => {
  test(`keep every value in the file and the database, ${ROUNDS} rounds`, async () => {
    const root = path.join(tmp.dir, 'writers');
    const roundFile = path.join(tmp.dir, 'round');
    writeFileSync(roundFile, '0');
    const read = `int(open(${JSON.stringify(roundFile)}).read())`;
    const context = `from damnit_ctx import Variable

@Variable(title="Alpha")
def alpha(run):
    return ${read}

@Variable(title="Beta")
def beta(run):
    return ${read}

@Variable(title="Gamma", data="proc")
def gamma(run):
    return ${read}
`;
    const db = await makeDatabase(root, context, { runs: RUNS.length, generatorArgs: ['--with-proc'] });
    const listen = execa(process.execPath, [CLI_PATH, 'listen', '--test'], {
      cwd: db,
      env: { NO_COLOR: '1' },
      stdin: 'pipe',
      reject: false,
    });
    const reprocess = (match: string) =>
      execa(process.execPath, [CLI_PATH, 'reprocess', ...RUNS.map(String), '--match', match], {
        cwd: db,
        env: { NO_COLOR: '1' },
        reject: false,
      });
    try {
      for (let round = 1; round <= ROUNDS; round++) {
        writeFileSync(roundFile, String(round));
        const writers = [reprocess('Alpha'), reprocess('Beta')];
        for (const run of RUNS) listen.stdin?.write(`1234 ${run} proc\n`);
        for (const res of await Promise.all(writers)) assert.equal(res.exitCode, 0, res.stderr);
        await eventually(`round ${round} of listen`, () =>
          RUNS.every((run) => runLines(readLog(db), run, 'proc').filter((l) => l.includes(': done in')).length >= round),
        );

        const stored = values(db);
        const inFiles = await fileValues(db);
        for (const run of RUNS) {
          for (const name of ['alpha', 'beta', 'gamma']) {
            assert.equal(stored.get(`r${run}.${name}`), round, `round ${round}: r${run} ${name} in runs.sqlite`);
            assert.equal(inFiles[run]?.[name], round, `round ${round}: r${run} ${name} in its HDF5 file`);
          }
        }
      }
    } finally {
      listen.stdin?.end();
      await listen;
    }
  });
});

// Issue 15, names: a variable name that would clash with the run's own data or with the runs
// view, or that is no Python identifier or dotted name, is refused when the context loads, with
// the name and the reason; more variables than the runs view can hold leave it working.
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeTempDir, runCli } from '../helpers/cli.js';
import { h5dump } from '../helpers/python.js';
import { makeProposal, rows } from '../helpers/proposal.js';

const tmp = makeTempDir('damnit-names-');
after(() => tmp.cleanup());

const GOOD = 'from damnit_ctx import Variable\n\n@Variable(title="Trains")\ndef trains(run):\n    return len(run.train_ids)\n';

/** A context whose variable's function is given the name `nameExpr` (Python) before it becomes one. */
const renamed = (nameExpr: string): string =>
  'from damnit_ctx import Variable\n\n\n' +
  'def make(name):\n' +
  '    def value(run):\n' +
  '        return 1\n' +
  '    value.__name__ = name\n' +
  '    return Variable(title="Value")(value)\n\n\n' +
  `renamed = make(${nameExpr})\n`;

describe('names refused when the context loads', () => {
  let db: string;
  let h5: string;
  // What a good context left: each bad one must leave it as it is.
  let fileBefore: Awaited<ReturnType<typeof h5dump>>;
  let rowsBefore: ReturnType<typeof rows>;
  before(async () => {
    ({ db } = await makeProposal(path.join(tmp.dir, 'p1234'), 1, GOOD));
    const first = await runCli(['reprocess', '1'], { cwd: db });
    assert.equal(first.code, 0, first.stderr);
    h5 = path.join(db, 'extracted_data', 'p1234_r1.h5');
    fileBefore = await h5dump(h5);
    rowsBefore = rows(db);
  });

  const cases: [string, string, string][] = [
    ['start_time, the run\'s own start time', '"start_time"', "The variable name 'start_time' is reserved: the run's file and the runs table keep the run's start time under it"],
    ['a column of the runs view', '"proposal"', "The variable name 'proposal' is reserved: it is a column of the runs table"],
    ['a column of the runs view, in other case', '"Run"', "The variable name 'Run' is reserved: it is a column of the runs table"],
    ['added_at', '"added_at"', "The variable name 'added_at' is reserved: it is a column of the runs table"],
    ['a name starting with "."', '".reduced"', "The variable name '.reduced' is not a valid Python identifier or dotted name"],
    ['an empty name', '""', "The variable name '' is not a valid Python identifier or dotted name"],
    ['a NUL byte', '"a\\0b"', "The variable name 'a\\x00b' is not a valid Python identifier or dotted name"],
    ['a path', '"../x"', "The variable name '../x' is not a valid Python identifier or dotted name"],
    ['a slash', '"a/b"', "The variable name 'a/b' is not a valid Python identifier or dotted name"],
  ];
  for (const [label, nameExpr, message] of cases) {
    test(label, async () => {
      writeFileSync(path.join(db, 'context.py'), renamed(nameExpr));
      const read = await runCli(['read-context'], { cwd: db });
      assert.equal(read.code, 1);
      assert.equal(read.stderr, `context.py:5:5: ${message}\nError: context.py has a problem; the database was not changed\n`);
      if (nameExpr === '"start_time"') {
        // It used to remove the run's start time from its file: no run may even start.
        const res = await runCli(['reprocess', '1'], { cwd: db });
        assert.equal(res.code, 1);
        assert.match(res.stderr, /no run was processed/);
      }
      assert.deepEqual(rows(db), rowsBefore);
      assert.deepEqual(await h5dump(h5), fileBefore, 'the run file keeps its start time and summaries');
    });
  }
});

describe('more variables than the runs view can hold', () => {
  test('3000 variables: all recorded, the view shows the first 1996, a warning names the others, table shows all', async () => {
    const context =
      'from damnit_ctx import Variable\n\n\n' +
      'def make(i):\n' +
      '    def value(run):\n' +
      '        return i\n' +
      '    value.__name__ = "v%04d" % i\n' +
      '    return Variable(title="V%04d" % i)(value)\n\n\n' +
      'for i in range(3000):\n' +
      '    globals()["v%04d" % i] = make(i)\n';
    const { db } = await makeProposal(path.join(tmp.dir, 'wide'), 1, context);
    const read = await runCli(['read-context'], { cwd: db });
    assert.equal(read.code, 0, read.stderr);
    assert.equal(
      read.stderr,
      'warning: the runs view shows only the first 1996 variables (SQLite allows 2000 columns); 1004 variables ' +
        'are left out of it but still recorded in run_variables and the HDF5 files: v1996, v1997, v1998, v1999, ' +
        'v2000 and 999 more\n',
    );
    const res = await runCli(['reprocess', '1', '--mock'], { cwd: db });
    assert.equal(res.code, 0, res.stderr);
    assert.equal(rows(db).length, 3000);
    assert.equal(rows(db).find((r) => r.name === 'v2999')?.value, 2999);
    const table = await runCli(['table'], { cwd: db });
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout.split('\n')[0] ?? '', /V1995 +V1996 .* V2999$/, 'table reads run_variables, not the view');
    assert.ok(existsSync(path.join(db, 'extracted_data', 'p1234_r1.h5')));
  });
});

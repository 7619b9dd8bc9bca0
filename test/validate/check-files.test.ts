// checkFiles: one report per file, in order, even when a file cannot be read.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { checkFiles } from '../../src/validate/check-files.js';
import { TargetResolver } from '../../src/validate/target-python.js';
import { ContextValidator } from '../../src/validate/validator.js';
import { makeTempDir } from '../helpers/cli.js';

const tmp = makeTempDir('damnit-check-files-');
let validator: ContextValidator;
before(async () => {
  validator = await ContextValidator.start({ pyflakes: false });
});
after(() => {
  validator?.close();
  tmp.cleanup();
});

test('a file that vanished is an error of its own; the others are still checked', async () => {
  const good = path.join(tmp.dir, 'good.py');
  const bad = path.join(tmp.dir, 'bad.py');
  writeFileSync(good, 'x = 1\n');
  writeFileSync(bad, 'x = (\n');
  const reports = await checkFiles([good, path.join(tmp.dir, 'gone.py'), bad], validator, new TargetResolver({ cwd: tmp.dir }));
  assert.deepEqual(
    reports.map((r) => [path.basename(r.file), r.diagnostics.map((d) => `${d.severity} ${d.kind} ${d.line}`)]),
    [
      ['good.py', []],
      ['gone.py', ['error io null']],
      ['bad.py', ['error syntax 1']],
    ],
  );
  assert.match(reports[1]?.diagnostics[0]?.message ?? '', /^cannot read: ENOENT/);
});

test('a file nested too deeply for Python is an error, not a crash', async () => {
  const deep = path.join(tmp.dir, 'deep.py');
  writeFileSync(deep, `x = ${'-'.repeat(200_000)}1\n`);
  const [report] = await checkFiles([deep], validator, new TargetResolver({ cwd: tmp.dir }));
  assert.equal(report?.diagnostics.length, 1);
  assert.equal(report?.diagnostics[0]?.severity, 'error');
});

/** `backend status` lists the runs whose last processing failed, until they are reprocessed successfully. */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { makeTempDir, runCli } from '../helpers/cli.js';
import { makeDatabase } from '../listener/helpers.js';

const tmp = makeTempDir('damnit-backend-failures-');
after(() => tmp.cleanup());

const CONTEXT = `import os
from pathlib import Path
from damnit_ctx import Variable

@Variable(title='Fragile')
def fragile(run, n: 'meta#run_number'):
    if n == 4 and Path('die').exists():
        os._exit(3)
    if not Path('fixed').exists():
        raise KeyError('no such source')
    return 1
`;

describe('backend status: failed runs', () => {
  test('lists failed variables and failed runs, and clears a run reprocessed successfully', async () => {
    const db = await makeDatabase(path.join(tmp.dir, 'db'), CONTEXT);
    writeFileSync(path.join(db, 'die'), '');
    const first = await runCli(['reprocess', '3', '4', '--mock'], { cwd: db });
    assert.equal(first.code, 1, first.stderr);

    const status = await runCli(['backend', 'status'], { cwd: db });
    assert.equal(status.code, 3);
    assert.match(status.stdout, /^last processing failed: 2 runs \(cleared when reprocessed successfully\)$/m);
    assert.match(status.stdout, /^ {2}r3 all: 1 variable failed: fragile: KeyError: 'no such source'$/m);
    assert.match(status.stdout, /^ {2}r4 all: .+$/m);
    assert.doesNotMatch(status.stdout, /r4 all: 1 variable failed/);

    writeFileSync(path.join(db, 'fixed'), '');
    const again = await runCli(['reprocess', '3', '--mock'], { cwd: db });
    assert.equal(again.code, 0, again.stderr);
    const after3 = await runCli(['backend', 'status'], { cwd: db });
    assert.match(after3.stdout, /^last processing failed: 1 run /m);
    assert.doesNotMatch(after3.stdout, /r3 all/);
    assert.match(after3.stdout, /^ {2}r4 all: /m);
  });
});

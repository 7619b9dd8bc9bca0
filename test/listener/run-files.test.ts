import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { checkHdf5File, snapshotRunDir } from '../../src/listener/run-files.js';
import { makeTempDir } from '../helpers/cli.js';
import { TEST_PYTHON } from '../helpers/paths.js';
import { makeSampleProposal } from '../helpers/python.js';

const tmp = makeTempDir('damnit-run-files-');
after(() => tmp.cleanup());

describe('when run files are complete', () => {
  let rawDir: string;
  let rawFile: string;

  before(async () => {
    await makeSampleProposal(tmp.dir, ['--runs', '1', '--trains', '5']);
    rawDir = path.join(tmp.dir, 'raw', 'r0001');
    const [name] = readdirSync(rawDir);
    assert.ok(name);
    rawFile = path.join(rawDir, name);
  });

  test('a file written by h5py and closed is whole', async () => {
    assert.deepEqual(await checkHdf5File(rawFile), { whole: true });
    const snapshot = await snapshotRunDir(rawDir);
    assert.equal(snapshot?.incomplete, null);
  });

  test('a copy still under way is not: shorter than its superblock says', async () => {
    const bytes = readFileSync(rawFile);
    const partial = path.join(tmp.dir, 'partial.h5');
    writeFileSync(partial, bytes.subarray(0, Math.floor(bytes.length / 2)));
    const check = await checkHdf5File(partial);
    assert.equal(check.whole, false);
    assert.match((check as { reason: string }).reason, new RegExp(`^${Math.floor(bytes.length / 2)} of ${bytes.length} bytes present$`));
  });

  test('a file an HDF5 writer holds open (version 3 superblock) is not, until it is closed', async () => {
    const file = path.join(tmp.dir, 'open.h5');
    const writer = execa(
      TEST_PYTHON,
      ['-c', 'import sys, h5py\nf = h5py.File(sys.argv[1], "w", libver="latest")\nf["x"] = [1, 2, 3]\nf.flush()\nprint("ready", flush=True)\nsys.stdin.read()\nf.close()', file],
      { stdin: 'pipe' },
    );
    await new Promise<void>((resolve) => writer.stdout?.once('data', () => resolve()));
    assert.deepEqual(await checkHdf5File(file), { whole: false, reason: 'open for writing' });
    writer.stdin?.end();
    await writer;
    assert.deepEqual(await checkHdf5File(file), { whole: true });
  });

  test('other files: not HDF5, empty', async () => {
    const text = path.join(tmp.dir, 'text.h5');
    writeFileSync(text, 'not hdf5 at all');
    assert.deepEqual(await checkHdf5File(text), { whole: false, reason: 'no HDF5 superblock' });
    const empty = path.join(tmp.dir, 'empty.h5');
    writeFileSync(empty, '');
    assert.deepEqual(await checkHdf5File(empty), { whole: false, reason: 'empty' });
  });

  test('a directory is incomplete while a copy tool writes a temporary name, or holds no HDF5 file', async () => {
    const dir = path.join(tmp.dir, 'raw-copy', 'r0002');
    mkdirSync(dir, { recursive: true });
    assert.equal((await snapshotRunDir(dir))?.incomplete, 'no HDF5 files yet');
    copyFileSync(rawFile, path.join(dir, 'RAW-R0002-DA01-S00000.h5'));
    writeFileSync(path.join(dir, '.RAW-R0002-DA01-S00001.h5.Xy12Ab'), 'partial');
    assert.equal((await snapshotRunDir(dir))?.incomplete, '.RAW-R0002-DA01-S00001.h5.Xy12Ab is being copied');
    assert.equal(await snapshotRunDir(path.join(tmp.dir, 'raw-copy', 'r0003')), null);
  });

  test('a snapshot changes when a file grows', async () => {
    const dir = path.join(tmp.dir, 'growing');
    mkdirSync(dir);
    writeFileSync(path.join(dir, 'a.h5'), 'x');
    const before = await snapshotRunDir(dir);
    writeFileSync(path.join(dir, 'a.h5'), 'xy');
    const after = await snapshotRunDir(dir);
    assert.notEqual(before?.signature, after?.signature);
  });
});

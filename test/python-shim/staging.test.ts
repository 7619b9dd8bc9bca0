// The run's staging file (h5writer.py): a writer killed with nobody to salvage after it leaves
// a consistent staging, which the next writer of that run applies before its own changes; a
// writer's commit keeps the entries of other writers, NetCDF groups readable with xarray; the
// stopped run's `salvage` coming after that loses nothing.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { makeTempDir } from '../helpers/cli.js';
import { TEST_PYTHON } from '../helpers/paths.js';
import { entry, h5dump, pythonJson } from '../helpers/python.js';
import { h5PathFor, HEADER, readChannel, runOk, SHIM, shimArgs, writeContext } from './runner-helpers.js';

const tmp = makeTempDir('damnit-staging-');
after(() => tmp.cleanup());

function context(mark: string, value: number): string {
  return `${HEADER}import os, time
import xarray as xr

@Variable(title="Scalar")
def scalar(run):
    return ${value}

@Variable(title="Trace")
def trace(run):
    return xr.DataArray(np.arange(5.0) * ${value}, dims=["trainId"], coords={"trainId": np.arange(5)})

@Variable(title="Stall")
def stall(run):
    if os.environ.get("STALL"):
        open(${JSON.stringify(mark)}, "w").close()
        time.sleep(600)
    return 0

@Variable(title="Other")
def other(run):
    return ${value} + 100
`;
}

describe('run: a writer killed with nobody to salvage after it', () => {
  test('the next writer of the run applies what it staged, then its own changes', async () => {
    const dir = path.join(tmp.dir, 'adopt');
    const mark = path.join(dir, 'stalled');
    await runOk(writeContext(dir, context(mark, 1)));

    const file = writeContext(dir, context(mark, 2));
    const child = spawn(TEST_PYTHON, shimArgs(file, path.join(dir, 'killed.jsonl'), {}), {
      cwd: dir,
      stdio: 'ignore',
      env: { ...process.env, STALL: '1' },
    });
    const exited = new Promise((resolve) => child.on('exit', resolve));
    while (!existsSync(mark)) {
      assert.equal(child.exitCode, null, 'the run ended before stalling');
      await sleep(20);
    }
    child.kill('SIGKILL');
    await exited;
    let dump = await h5dump(h5PathFor(dir));
    assert.equal(entry(dump, 'scalar/data').value, 1, 'the run file itself is untouched until a commit');

    // Only `other` this time: `scalar` and `trace` come from the killed writer's staging.
    await runOk(writeContext(dir, context(mark, 3)), { extra: ['--match', 'other'] });
    dump = await h5dump(h5PathFor(dir));
    assert.equal(entry(dump, 'scalar/data').value, 2);
    assert.equal(entry(dump, 'other/data').value, 103);
    assert.equal(entry(dump, 'stall/data').value, 0, 'the earlier value of the variable it was in stays');
    const trace = await pythonJson<number[]>(
      'import sys, xarray as xr; print(xr.open_dataarray(sys.argv[1], group="trace", engine="h5netcdf").values.tolist())',
      [h5PathFor(dir)],
    );
    assert.deepEqual(trace, [0, 2, 4, 6, 8]);

    // The stopped run's salvage, coming after that writer: nothing is lost, `stall` is an error.
    const channel = path.join(dir, 'salvage.jsonl');
    const salvage = await execa(TEST_PYTHON, [
      SHIM, '--channel', `file:${channel}`, 'salvage', '--out', h5PathFor(dir), '--wait-for', String(child.pid),
      '--recorded', 'scalar', '--recorded', 'trace', '--interrupted', 'stall', '--reason', 'stopped by the test',
    ], { cwd: dir, reject: false });
    assert.equal(salvage.exitCode, 0, salvage.stderr);
    assert.deepEqual(readChannel(channel).at(-1), { protocol: 1, kind: 'salvaged', adopted: 0, lost: [] });
    dump = await h5dump(h5PathFor(dir));
    assert.equal(entry(dump, 'scalar/data').value, 2);
    assert.equal(entry(dump, '.errors/stall').value, 'stopped by the test');
    assert.ok(!dump.has('stall/data'));
    assert.deepEqual(readdirSync(path.join(dir, 'extracted_data')).filter((f) => !f.startsWith('.')), ['p1234_r1.h5']);
  });
});

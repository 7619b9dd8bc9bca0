// Trendlines of 1-D results (python-shim/_damnit_shim/trendline.py): the points the reference's
// FPCS downsampling keeps.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { pythonJson } from '../helpers/python.js';

/** The (2, N) trendline of the 1-D data made by `expression`, as [[x...], [y...]] (NaN as 'nan'). */
async function line(expression: string): Promise<number[][]> {
  return pythonJson<number[][]>(
    'import json, sys\n' +
      'import numpy as np, xarray as xr\n' +
      'from _damnit_shim.trendline import trendline\n' +
      'a = trendline(eval(sys.argv[1]), lambda d: isinstance(d, xr.DataArray))\n' +
      'assert a.dtype == np.float64 and a.ndim == 2 and a.shape[0] == 2\n' +
      'print(json.dumps([[v if np.isfinite(v) else str(v) for v in row] for row in a.tolist()]))',
    [expression],
  );
}

describe('trendlines', () => {
  test('1000 points keep 126, the reference count, first and last included', async () => {
    const [x, y] = await line('np.sin(np.linspace(0, 20, 1000))');
    assert.equal(x!.length, 126);
    assert.equal(x![0], 0);
    assert.equal(x!.at(-1), 999);
    assert.ok(Math.max(...y!) > 0.9999 && Math.min(...y!) < -0.9999, 'peaks and valleys kept');
    assert.deepEqual([...x!].sort((a, b) => a - b), x, 'in order of x');
  });

  test('fewer than 240 points are kept whole', async () => {
    assert.equal((await line('np.arange(239.)'))[0]!.length, 239);
    assert.equal((await line('list(range(100))'))[0]!.length, 100);
  });

  test('each window keeps its earlier extreme and carries the other to the next window', async () => {
    // 8 points, 2 per window, worked by hand: (3, 4), (4, 2) and (5, 3) are never an earlier
    // extreme; the last point is always kept.
    const points = await pythonJson<number[][]>(
      'import json, numpy as np\n' +
        'from _damnit_shim.trendline import _fpcs\n' +
        'x = np.arange(8.); y = np.array([0., 5, 1, 4, 2, 3, 6, -1])\n' +
        'print(json.dumps([[float(a), float(b)] for a, b in _fpcs(x, y, 2)]))',
    );
    assert.deepEqual(points, [[0, 0], [1, 5], [2, 1], [6, 6], [7, -1]]);
  });

  test('NaN points are kept as gaps; a DataArray uses its coordinate, sorted', async () => {
    const [, y] = await line('np.where(np.arange(1000) % 100 == 50, np.nan, np.arange(1000.))');
    assert.equal(y!.filter((v) => String(v) === 'nan').length, 10);
    const [x] = await line('xr.DataArray(np.arange(300.), dims=["t"], coords={"t": np.arange(300.)[::-1] + 10})');
    assert.equal(x![0], 10);
    assert.equal(x!.at(-1), 309);
  });

  test('an empty array is an empty (2, 0) line', async () => {
    assert.deepEqual(await line('np.array([], dtype=np.float32)'), [[], []]);
  });
});

// Thumbnails of 2-D arrays (python-shim/_damnit_shim/thumbnails.py), decoded with PIL: what the
// reference draws with matplotlib, pixel for pixel where matplotlib keeps nearest neighbours.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { pythonJson } from '../helpers/python.js';

interface Drawn {
  mode: string;
  size: [number, number];
  corners: number[][];
  colours: number;
}

/** Draws the array made by `expression` and reports the PNG's mode, size, corner pixels
 * (top-left, top-right, bottom-left, bottom-right) and how many colours it holds. */
async function draw(expression: string): Promise<Drawn> {
  return pythonJson<Drawn>(
    'import io, json, sys\n' +
      'import numpy as np, xarray as xr\n' +
      'from PIL import Image\n' +
      'from _damnit_shim.thumbnails import array_thumbnail\n' +
      'data = eval(sys.argv[1])\n' +
      'png = array_thumbnail(data, lambda d: isinstance(d, xr.DataArray))\n' +
      'image = Image.open(io.BytesIO(png))\n' +
      'pixels = np.asarray(image)\n' +
      'corners = [pixels[y, x].tolist() for y, x in ((0, 0), (0, -1), (-1, 0), (-1, -1))]\n' +
      'colours = len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0))\n' +
      'print(json.dumps({"mode": image.mode, "size": image.size, "corners": corners, "colours": colours}))',
    [expression],
  );
}

// The reference's thumbnail of np.arange(20.).reshape(4, 5), read from its PNG.
const FIRST = [68, 1, 84, 255];
const ROW0_LAST = [64, 68, 135, 255];
const ROW3_FIRST = [119, 208, 82, 255];
const LAST = [253, 231, 36, 255];

describe('array thumbnails', () => {
  test('a 4x5 array fills a 300x300 RGBA image, coloured as the reference colours it', async () => {
    const drawn = await draw('np.arange(20.).reshape(4, 5)');
    assert.equal(drawn.mode, 'RGBA');
    assert.deepEqual(drawn.size, [300, 300]);
    assert.deepEqual(drawn.corners, [FIRST, ROW0_LAST, ROW3_FIRST, LAST]);
    assert.equal(drawn.colours, 20, 'one colour per element: nearest neighbours, no smoothing');
  });

  test('a 1x100 strip is stretched to 300x300 too', async () => {
    const drawn = await draw('np.arange(100.).reshape(1, 100)');
    assert.deepEqual(drawn.size, [300, 300]);
    assert.deepEqual(drawn.corners[0], drawn.corners[2], 'one row: the same colour top and bottom');
  });

  test('a constant image is the lowest colour of the map, as matplotlib draws it', async () => {
    const drawn = await draw('np.full((10, 10), 3.0)');
    assert.equal(drawn.colours, 1);
    assert.deepEqual(drawn.corners[0], FIRST);
  });

  test('an array larger than the thumbnail is smoothed into 300x300', async () => {
    const drawn = await draw('np.random.default_rng(0).normal(size=(1000, 700))');
    assert.deepEqual(drawn.size, [300, 300]);
    assert.ok(drawn.colours > 20, `a smoothed, varied image, got ${drawn.colours} colours`);
  });

  test('a DataArray is drawn as xarray draws it: y increasing upwards, x to the right', async () => {
    const plain = await draw('xr.DataArray(np.arange(20.).reshape(4, 5), dims=("y", "x"))');
    assert.deepEqual(plain.corners, [ROW3_FIRST, LAST, FIRST, ROW0_LAST], 'first row at the bottom');
    const yDown = await draw('xr.DataArray(np.arange(20.).reshape(4, 5), dims=("y", "x"), coords={"y": [3, 2, 1, 0]})');
    assert.deepEqual(yDown.corners, [FIRST, ROW0_LAST, ROW3_FIRST, LAST], 'decreasing y: first row on top');
    const xDown = await draw('xr.DataArray(np.arange(20.).reshape(4, 5), dims=("y", "x"), coords={"x": [5, 4, 3, 2, 1]})');
    assert.deepEqual(xDown.corners, [LAST, ROW3_FIRST, ROW0_LAST, FIRST], 'decreasing x: first column on the right');
  });

  test('NaN is drawn as 0 and complex values as their magnitude', async () => {
    const withNan = await draw('np.array([[np.nan, 1.0], [2.0, 3.0]])');
    const withZero = await draw('np.array([[0.0, 1.0], [2.0, 3.0]])');
    assert.deepEqual(withNan.corners, withZero.corners);
    const complex = await draw('np.array([[0j, 1j], [2.0, 3j]])');
    assert.deepEqual(complex.corners, withZero.corners);
  });
});

// The shim's `run` command on a mock run: every return type, every summary rule, the messages
// the orchestrator records, and the HDF5 layout read back with h5py.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeTempDir } from '../helpers/cli.js';
import { HEADER, bytesOf, h5PathFor, pngSize, result, runOk, writeContext, type RunOutput } from './runner-helpers.js';
import { entry, h5dump, pythonJson, type H5Entry } from '../helpers/python.js';

const tmp = makeTempDir('damnit-runner-');
after(() => tmp.cleanup());

const RETURN_TYPES = HEADER + `
import xarray as xr

@Variable(title="Int")
def an_int(run, n: "meta#run_number"):
    return 3 * n

@Variable(title="Float")
def a_float(run):
    return 1.5

@Variable(title="Bool")
def a_bool(run):
    return True

@Variable(title="Complex")
def a_complex(run):
    return 1 + 2j

@Variable(title="String")
def a_str(run, proposal: "meta#proposal", path: "meta#proposal_path", same: "meta#proposal_dir"):
    assert path == same
    return f"p{proposal} {type(path).__name__}"

@Variable(title="List")
def a_list(run):
    return [1, 2, 3.5]

@Variable(title="Line")
def line(run):
    return np.sin(np.linspace(0, 10, 1000))

@Variable(title="Empty line")
def empty_line(run):
    return np.array([], dtype=np.float32)

@Variable(title="Image")
def image(run):
    return np.arange(2000.).reshape(40, 50)

@Variable(title="Wide image")
def wide_image(run):
    img = np.zeros((255, 1024))
    img[100, 500] = np.nan
    return img

@Variable(title="Cube")
def cube(run):
    return np.zeros((2, 3, 4), dtype=np.int16)

@Variable(title="Mean", summary="mean")
def with_summary(run):
    return np.array([1.0, 2.0, 6.0])

@Variable(title="Bad summary", summary="no_such_function")
def bad_summary(run):
    return "text"

@Variable(title="DataArray", summary="max")
def data_array(run):
    return xr.DataArray(np.array([1.0, 4.0, 2.0]), dims=["trainId"],
                        coords={"trainId": [10, 11, 12]}, name="SA1/XGM.x", attrs={"units": "mm"})

@Variable(title="Dataset")
def data_set(run):
    return xr.Dataset({"a/b": ("x", np.arange(1000.0)), "c": ("x", np.ones(1000))})

@Variable(title="Figure")
def figure(run):
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    fig = Figure(figsize=(6, 4), dpi=100)
    fig.add_subplot().plot([1, 3, 2])
    return fig

@Variable(title="Axes")
def axes(run):
    from matplotlib.figure import Figure
    fig = Figure(figsize=(2, 2), dpi=50)
    return fig.add_subplot()

@Variable(title="Plotly")
def plotly_figure(run):
    import plotly.graph_objects as go
    return go.Figure(data=go.Scatter(x=[1, 2], y=[3, 4]))

@Variable(title="Cell", summary="max", units="eV")
def cell(run):
    return Cell(np.array([1.0, 5.0, 3.0]), bold=True, background="#ffcc00", units="mJ")

@Variable(title="Cell value")
def cell_value(run):
    return Cell(np.arange(10), summary_value="ten", background=[1, 2, 3])

@Variable(title="Cell preview")
def cell_preview(run):
    return Cell(np.zeros((4, 5, 6)), preview=np.arange(20.0).reshape(4, 5))

@Variable(title="Units", units="uJ")
def with_units(run):
    return 2.5

@Variable(title="Nothing")
def nothing(run):
    return None

@Variable(title="Hidden", transient=True)
def hidden(run):
    return {"not": "storable"}

@Variable(title="Uses hidden")
def uses_hidden(run, h: "var#hidden", n: "var#an_int"):
    # a dependency's value arrives as stored: n is a 0-d numpy array
    return f"{h['not']} {type(n).__name__} {int(n)}"

@Variable(title="Glob")
def uses_glob(run, d: "var#a_*"):
    return ",".join(sorted(d))

@Variable(title="Train count")
def trains(run):
    return len(run.train_ids)
`;

describe('run: return types and summaries (mock run)', () => {
  let out: RunOutput;
  let dump: Map<string, H5Entry>;
  const dir = path.join(tmp.dir, 'types');

  before(async () => {
    out = await runOk(writeContext(dir, RETURN_TYPES), { run: 7 });
    dump = await h5dump(h5PathFor(dir, 1234, 7));
  });

  test('messages: hello, run_started listing stored variables in order, results, run_finished', () => {
    const kinds = out.messages.map((m) => m.kind);
    assert.equal(kinds[0], 'hello');
    assert.equal(kinds[1], 'run_started');
    assert.equal(kinds.at(-1), 'run_finished');
    const started = out.messages[1];
    assert.ok(started?.kind === 'run_started');
    assert.equal(started.proposal, 1234);
    assert.equal(started.run, 7);
    assert.equal(started.run_data, 'raw');
    assert.ok(!started.variables.includes('hidden'), 'transient variables are not announced');
    assert.ok(started.variables.indexOf('an_int') < started.variables.indexOf('uses_hidden'));
    // None results and transient variables send no result; everything else does.
    const expected = started.variables.filter((n) => n !== 'nothing');
    assert.deepEqual([...out.results.keys()], expected);
    const finished = out.messages.at(-1);
    assert.ok(finished?.kind === 'run_finished');
    assert.equal(finished.h5_path, h5PathFor(dir, 1234, 7));
    assert.equal(typeof finished.start_time, 'number');
    assert.match(out.stderr, /Computed an_int in \d+\.\d{3} s/);
  });

  test('scalars, strings and meta# arguments', () => {
    assert.deepEqual(result(out, 'an_int').value, { t: 'int', v: '21' });
    assert.deepEqual(result(out, 'a_float').value, { t: 'float', v: 1.5 });
    assert.deepEqual(result(out, 'a_bool').value, { t: 'int', v: '1' });
    // A mock run has no proposal directory, as the reference's: nothing waits on real files.
    assert.deepEqual(result(out, 'a_str').value, { t: 'str', v: 'p1234 str' });
    assert.deepEqual(result(out, 'trains').value, { t: 'int', v: '10' });
    for (const name of ['an_int', 'a_float', 'a_str']) {
      const r = result(out, name);
      assert.equal(r.summary_method, '', 'no summary: empty method, as the reference');
      assert.equal(r.summary_type, null);
      assert.equal(r.max_diff, null);
      assert.equal(r.attributes, null);
      assert.equal(typeof r.duration_s, 'number');
    }
    assert.deepEqual(entry(dump, 'an_int/data').value, 21);
    assert.deepEqual(entry(dump, '.reduced/an_int').value, 21);
    assert.equal(entry(dump, 'a_str/data').dtype, 'str');
    assert.equal(entry(dump, '.reduced/a_str').value, 'p1234 str');
  });

  test('complex: 16 bytes little-endian with summary_type complex', () => {
    const r = result(out, 'a_complex');
    assert.equal(r.summary_type, 'complex');
    const blob = bytesOf(r.value);
    assert.equal(blob.length, 16);
    assert.equal(blob.readDoubleLE(0), 1);
    assert.equal(blob.readDoubleLE(8), 2);
    assert.deepEqual(entry(dump, 'a_complex/data').value, { re: 1, im: 2 });
  });

  test('1-D data: a (2, N) float64 trendline as .npy bytes', async () => {
    const list = result(out, 'a_list');
    assert.equal(list.summary_type, 'trendline');
    assert.equal(list.max_diff, 2.5);
    const line = result(out, 'line');
    assert.equal(line.summary_type, 'trendline');
    const info = await pythonJson<{ shape: number[]; dtype: string; first: number[]; ymax: number }>(
      'import sys, io, base64, json, numpy as np\n' +
        'a = np.load(io.BytesIO(base64.b64decode(sys.argv[1])), allow_pickle=False)\n' +
        'print(json.dumps({"shape": list(a.shape), "dtype": a.dtype.str, "first": a[:, 0].tolist(), "ymax": float(a[1].max())}))',
      [line.value?.v as string],
    );
    assert.equal(info.shape[0], 2);
    assert.equal(info.shape[1], 126, 'the points the reference keeps of 1000');
    assert.equal(info.dtype, '<f8');
    assert.deepEqual(info.first, [0, 0]);
    assert.ok(info.ymax > 0.9999, 'the peaks survive downsampling');
    assert.deepEqual(entry(dump, '.reduced/line').shape, [2, info.shape[1]]);
    assert.equal(entry(dump, '.reduced/line').attrs.summary_type, 'trendline');
    assert.deepEqual(entry(dump, 'line/data').shape, [1000]);
    assert.deepEqual(entry(dump, '.reduced/empty_line').shape, [2, 0]);
  });

  test('2-D data: a 300x300 RGBA PNG thumbnail, whatever the shape, as the reference draws', () => {
    const small = result(out, 'image');
    assert.equal(small.summary_type, null);
    assert.equal(small.max_diff, 1999);
    assert.deepEqual(pngSize(bytesOf(small.value)), { width: 300, height: 300, colourType: 'RGBA' });
    const wide = result(out, 'wide_image');
    assert.deepEqual(pngSize(bytesOf(wide.value)), { width: 300, height: 300, colourType: 'RGBA' });
    assert.equal(wide.max_diff, 0, 'NaN ignored by max_diff');
    const stored = entry(dump, '.reduced/image');
    assert.equal(stored.dtype, '|u1');
    assert.equal(stored.head, '89504e470d0a1a0a');
    assert.deepEqual(entry(dump, 'image/data').shape, [40, 50]);
  });

  test('file layout as the reference: provenance at the root, arrays plain, NetCDF variables gzip', () => {
    assert.deepEqual(entry(dump, '/').attrs, { provenance: 'context.py' });
    for (const name of ['line/data', 'image/data', 'cube/data', 'figure/data', '.reduced/line', '.reduced/image']) {
      assert.equal(entry(dump, name).compression, null, `${name} is stored plain`);
    }
    assert.equal(entry(dump, 'data_set/c').compression, 'gzip');
  });

  test('3-D and up: "<dtype>: <shape>"', () => {
    assert.deepEqual(result(out, 'cube').value, { t: 'str', v: 'int16: (2, 3, 4)' });
    assert.equal(result(out, 'cube').max_diff, 0);
  });

  test('summary= applies np.<summary>; a failing one falls back to the type rule', () => {
    const mean = result(out, 'with_summary');
    assert.deepEqual(mean.value, { t: 'float', v: 3 });
    assert.equal(mean.summary_method, 'mean');
    assert.equal(mean.max_diff, 5);
    assert.equal(entry(dump, '.reduced/with_summary').attrs.summary_method, 'mean');
    const bad = result(out, 'bad_summary');
    assert.deepEqual(bad.value, { t: 'str', v: 'text' });
    assert.equal(bad.summary_method, 'no_such_function');
    assert.match(out.stderr, /Failed to produce summary data for bad_summary/);
  });

  test('xarray: NetCDF4 groups with _damnit_objtype, "/" in names stored as "_"', async () => {
    const da = result(out, 'data_array');
    assert.deepEqual(da.value, { t: 'float', v: 4 });
    assert.deepEqual(da.attributes, { units: 'mm' }, 'units from the DataArray attrs');
    assert.equal(entry(dump, 'data_array').attrs._damnit_objtype, 'dataarray');
    assert.ok(dump.has('data_array/SA1_XGM.x'));
    const ds = result(out, 'data_set');
    assert.deepEqual(ds.value, { t: 'str', v: 'Dataset (0.02MB)' });
    assert.equal(entry(dump, 'data_set').attrs._damnit_objtype, 'dataset');
    const readBack = await pythonJson<{ da: number[]; name: string; ds: string[] }>(
      'import sys, json, xarray as xr\n' +
        'da = xr.open_dataarray(sys.argv[1], group="data_array", engine="h5netcdf")\n' +
        'ds = xr.open_dataset(sys.argv[1], group="data_set", engine="h5netcdf")\n' +
        'print(json.dumps({"da": da.values.tolist(), "name": da.name, "ds": sorted(ds.data_vars)}))',
      [h5PathFor(dir, 1234, 7)],
    );
    assert.deepEqual(readBack, { da: [1, 4, 2], name: 'SA1_XGM.x', ds: ['a_b', 'c'] });
  });

  test('figures: matplotlib as RGBA data with a PNG thumbnail, plotly as JSON bytes', () => {
    const fig = result(out, 'figure');
    assert.deepEqual(pngSize(bytesOf(fig.value)), { width: 300, height: 200, colourType: 'RGBA' });
    const data = entry(dump, 'figure/data');
    assert.deepEqual(data.shape, [400, 600, 4]);
    assert.equal(data.dtype, '|u1');
    assert.equal(entry(dump, 'figure').attrs._damnit_objtype, 'image');
    // An Axes stands for its figure; a figure smaller than 300 px is not enlarged.
    assert.deepEqual(pngSize(bytesOf(result(out, 'axes').value)), { width: 100, height: 100, colourType: 'RGBA' });
    assert.equal(entry(dump, 'plotly_figure').attrs._damnit_objtype, 'PlotlyFigure');
    assert.equal(entry(dump, 'plotly_figure/data').dtype, '|u1');
    assert.equal(entry(dump, 'plotly_figure/data').head, Buffer.from('{"data"').toString('hex') + '3a');
  });

  test('Cell: display attributes, units, summary_value, preview', () => {
    const cell = result(out, 'cell');
    assert.deepEqual(cell.value, { t: 'float', v: 5 });
    assert.equal(cell.summary_method, 'max');
    assert.equal(cell.max_diff, 4);
    assert.deepEqual(cell.attributes, { background: [255, 204, 0], bold: true, units: 'mJ' });
    const reduced = entry(dump, '.reduced/cell');
    assert.deepEqual(reduced.attrs.background, [255, 204, 0]);
    assert.equal(reduced.attrs.bold, true);
    assert.equal(reduced.attrs.units, 'mJ');
    assert.equal(reduced.attrs.max_diff, 4);

    const valued = result(out, 'cell_value');
    assert.deepEqual(valued.value, { t: 'str', v: 'ten' });
    assert.deepEqual(valued.attributes, { background: [1, 2, 3] });
    assert.equal(valued.max_diff, 9);

    const preview = result(out, 'cell_preview');
    assert.deepEqual(pngSize(bytesOf(preview.value)), { width: 300, height: 300, colourType: 'RGBA' }, 'summary from the preview');
    assert.deepEqual(entry(dump, '.preview/cell_preview').shape, [4, 5]);
    assert.deepEqual(entry(dump, 'cell_preview/data').shape, [4, 5, 6]);

    assert.deepEqual(result(out, 'with_units').attributes, { units: 'uJ' });
  });

  test('None stores nothing; transient values reach dependants but are never stored', () => {
    assert.ok(!out.results.has('nothing'));
    assert.ok(!dump.has('nothing') && !dump.has('.reduced/nothing'));
    assert.ok(!dump.has('hidden') && !dump.has('.reduced/hidden') && !dump.has('.errors/hidden'));
    assert.deepEqual(result(out, 'uses_hidden').value, { t: 'str', v: 'storable ndarray 21' });
    assert.deepEqual(result(out, 'uses_glob').value, {
      t: 'str',
      v: 'a_bool,a_complex,a_float,a_list,a_str',
    });
  });

  test('layout: special groups and start_time', () => {
    for (const group of ['.reduced', '.preview', '.errors', 'start_time']) assert.equal(entry(dump, group).group, true);
    const finished = out.messages.at(-1);
    assert.ok(finished?.kind === 'run_finished');
    assert.equal(entry(dump, 'start_time/data').value, finished.start_time);
    assert.equal(entry(dump, '.reduced/start_time').value, finished.start_time);
    assert.ok(!out.results.has('start_time'), 'start_time goes in run_finished, not as a result');
  });
});

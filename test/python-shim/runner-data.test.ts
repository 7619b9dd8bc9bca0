// The shim's `run` command on real run files from the sample proposal generator: the seed's
// example context unchanged, the newer extra_data API on extra_data 1.7, proc data and its
// fallback. Expected values are computed here from the files with h5py, not with extra_data.
import assert from 'node:assert/strict';
import { copyFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeTempDir } from '../helpers/cli.js';
import { HEADER, SAMPLE_CONTEXT, h5PathFor, result, runOk, writeContext } from './runner-helpers.js';
import { entry, h5dump, makeSampleProposal, pythonJson } from '../helpers/python.js';

const tmp = makeTempDir('damnit-runner-data-');
after(() => tmp.cleanup());

const proposal = path.join(tmp.dir, 'proposal');
before(async () => {
  await makeSampleProposal(proposal, ['--runs', '3', '--trains', '30']);
  await makeSampleProposal(proposal, ['--runs', '1', '--first-run', '4', '--trains', '30', '--with-proc']);
});

interface Expected {
  per_train: number[];
  mean: number;
  max_diff: number;
  pulses: number;
  start: number;
}

// What the seed's two variables should give, straight from the HDF5 datasets.
const EXPECTED = String.raw`
import json, sys
import h5py, numpy as np
path = "%s/raw/r%04d/RAW-R%04d-DA01-S00000.h5" % (sys.argv[1], int(sys.argv[2]), int(sys.argv[2]))
with h5py.File(path, "r") as f:
    xgm = f["INSTRUMENT/SA2_XTD1_XGM/XGM/DOOCS:output/data/intensityTD"][:]
    bunches = f["CONTROL/SA2_XTD1_XGM/XGM/DOOCS/pulseEnergy/numberOfBunchesActual/value"][:]
    first_ns = int(f["INDEX/timestamp"][0])
per_train = xgm[:, xgm[0] > 1].mean(axis=1)
assert (bunches == bunches[0]).all()
print(json.dumps({
    "per_train": per_train.astype(float).tolist(),
    "mean": float(np.mean(per_train)),
    "max_diff": float(per_train.max() - per_train.min()),
    "pulses": float(bunches[0]),
    "start": first_ns // 1000 / 1e6,
}))
`;

function close(actual: unknown, expected: number, what: string): void {
  assert.equal(typeof actual, 'number', `${what}: ${JSON.stringify(actual)}`);
  assert.ok(Math.abs((actual as number) - expected) <= 1e-4 * Math.max(1, Math.abs(expected)),
    `${what}: ${String(actual)} != ${expected}`);
}

describe("run: the seed's example context on the sample runs, unchanged", () => {
  test('XGM intensity and pulses match values computed from the files', async () => {
    const dir = path.join(tmp.dir, 'seed');
    const contextFile = path.join(dir, 'context.py');
    writeContext(dir, '');
    copyFileSync(SAMPLE_CONTEXT, contextFile);
    const seen = new Set<number>();
    for (const run of [1, 2, 3]) {
      const expected = await pythonJson<Expected>(EXPECTED, [proposal, String(run)]);
      const out = await runOk(contextFile, { mock: false, run, runData: 'all', proposalPath: proposal });
      const xgm = result(out, 'xgm_intensity');
      assert.equal(xgm.value?.t, 'float');
      close(xgm.value?.v, expected.mean, `run ${run} xgm_intensity`);
      assert.equal(xgm.summary_method, 'mean');
      close(xgm.max_diff, expected.max_diff, `run ${run} max_diff`);
      assert.deepEqual(result(out, 'pulses').value, { t: 'float', v: expected.pulses });
      const finished = out.messages.at(-1);
      assert.ok(finished?.kind === 'run_finished');
      assert.equal(finished.start_time, expected.start);
      assert.match(out.stderr, /Proc data is unavailable, only raw variables will be executed\./);
      seen.add(expected.pulses);

      const stored = await pythonJson<{ values: number[]; trains: number[] }>(
        'import sys, json, xarray as xr\n' +
          'da = xr.open_dataarray(sys.argv[1], group="xgm_intensity", engine="h5netcdf")\n' +
          'print(json.dumps({"values": da.values.astype(float).tolist(), "trains": da.trainId.values.tolist()}))',
        [h5PathFor(dir, 1234, run)],
      );
      assert.equal(stored.values.length, 30);
      stored.values.forEach((v, i) => close(v, expected.per_train[i]!, `run ${run} train ${i}`));
      assert.equal(stored.trains[0], 1_000_000_000 + run * 10_000);
    }
    assert.equal(seen.size, 3, 'the runs differ');
  });
});

const NEWER_API = HEADER + `
XGM = "SA2_XTD1_XGM/XGM/DOOCS"

@Variable(title="Flux units")
def flux_units(run):
    kd = run[XGM, "pulseEnergy.photonFlux"]
    return f"{kd.units} {kd.units_name} {kd.dtype} {kd.entry_shape} {kd.ndim}"

@Variable(title="Varying")
def varying(run):
    return run[XGM, "beamPosition.ixPos"].as_single_value()

@Variable(title="Loose")
def loose(run):
    return run[XGM, "beamPosition.ixPos"].as_single_value(atol=10)

@Variable(title="Source keys")
def source_keys(run):
    src = run[XGM]
    return ",".join(sorted(src.keys(inc_timestamps=False)))

@Variable(title="Via source")
def via_source(run):
    src = run[XGM]
    assert "pulseEnergy.numberOfBunchesActual" in src
    assert (XGM, "pulseEnergy.numberOfBunchesActual") in run
    return src["pulseEnergy.numberOfBunchesActual"].as_single_value(reduce_by="first")

@Variable(title="Train coordinates")
def train_coordinates(run):
    kd = run[XGM + ":output", "data.intensityTD"]
    return kd.train_id_coordinates() - run[XGM + ":output"].train_id_coordinates()[0]

@Variable(title="Missing key")
def missing_key(run):
    return run[XGM, "noSuchKey"].ndarray()

@Variable(title="Detector", data="proc")
def detector(run):
    return float(run["SA2_XTD1_IMGPII/CAM/BEAMVIEW:daqOutput", "data.image.pixels"].ndarray().mean())

@Variable(title="Detector type")
def detector_type(run, mean: "var#detector"):
    return str(run["SA2_XTD1_IMGPII/CAM/BEAMVIEW:daqOutput", "data.image.pixels"].dtype)
`;

describe('run: the newer extra_data API on extra_data 1.7', () => {
  const dir = path.join(tmp.dir, 'api');
  let contextFile: string;
  before(() => {
    contextFile = writeContext(dir, NEWER_API);
  });

  test('units, as_single_value, run[source], keys without .value, train ID coordinates', async () => {
    const out = await runOk(contextFile, { mock: false, run: 2, proposalPath: proposal });
    assert.deepEqual(result(out, 'flux_units').value, { t: 'str', v: 'μJ microjoule float32 () 1' });
    const varying = result(out, 'varying');
    assert.equal(varying.attributes?.error_cls, 'ValueError');
    assert.match(String(varying.attributes?.error), /^data values are not within tolerance \(absolute: .*, relative: .*\)$/);
    assert.equal(result(out, 'loose').value?.t, 'float');
    assert.deepEqual(result(out, 'source_keys').value, {
      t: 'str',
      v: 'beamPosition.ixPos,beamPosition.iyPos,pulseEnergy.numberOfBunchesActual,pulseEnergy.photonFlux',
    });
    const bunches = await pythonJson<Expected>(EXPECTED, [proposal, '2']);
    assert.deepEqual(result(out, 'via_source').value, { t: 'float', v: bunches.pulses });
    assert.equal(result(out, 'train_coordinates').summary_type, 'trendline');
    assert.equal(result(out, 'train_coordinates').max_diff, 29);
    assert.deepEqual(result(out, 'missing_key').attributes, {
      error: "No property 'noSuchKey' for source 'SA2_XTD1_XGM/XGM/DOOCS'",
      error_cls: 'PropertyNameError',
    });
    assert.ok(!out.results.has('detector'), 'raw trigger: proc variables do not run');
  });

  test('proc data: proc sources replace raw ones; raw-only runs fall back with a warning', async () => {
    const withProc = await runOk(contextFile, { mock: false, run: 4, runData: 'proc', proposalPath: proposal });
    const started = withProc.messages[1];
    assert.ok(started?.kind === 'run_started');
    assert.deepEqual(started.variables, ['detector', 'detector_type'], 'proc variables, promotion included');
    assert.deepEqual(result(withProc, 'detector_type').value, { t: 'str', v: 'float32' });
    const corrected = await pythonJson<number>(
      'import sys, json, h5py\n' +
        'f = h5py.File(sys.argv[1] + "/proc/r0004/CORR-R0004-DA01-S00000.h5", "r")\n' +
        'print(json.dumps(float(f["INSTRUMENT/SA2_XTD1_IMGPII/CAM/BEAMVIEW:daqOutput/data/image/pixels"][:].mean())))',
      [proposal],
    );
    close(result(withProc, 'detector').value?.v, corrected, 'mean of the corrected image');

    const all = await runOk(contextFile, { mock: false, run: 4, runData: 'all', proposalPath: proposal });
    assert.ok(all.results.has('flux_units') && all.results.has('detector'));

    const fallback = await runOk(contextFile, { mock: false, run: 1, runData: 'all', proposalPath: proposal });
    assert.match(fallback.stderr, /Proc data is unavailable, only raw variables will be executed\./);
    assert.ok(fallback.results.has('flux_units'));
    assert.ok(!fallback.results.has('detector') && !fallback.results.has('detector_type'));
    const dump = await h5dump(h5PathFor(dir, 1234, 1));
    assert.equal(entry(dump, '.reduced/start_time').value, Date.UTC(2026, 0, 5, 8, 0) / 1000);
  });
});

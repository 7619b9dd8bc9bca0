/**
 * Python-side helpers for tests: read an HDF5 file back with h5py, run a snippet with the test
 * interpreter, make a sample proposal with the fixture generator.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { execa } from 'execa';
import { FIXTURES_DIR, REPO_ROOT, TEST_PYTHON } from './paths.js';

const GENERATOR = path.join(FIXTURES_DIR, 'make_sample_proposal.py');

/** One HDF5 object as h5dump() reports it (the file's root is `/`). `value` only for small
 * datasets; `head` holds the first bytes (hex) of uint8 datasets such as PNG thumbnails. */
export interface H5Entry {
  group?: true;
  shape?: number[];
  dtype?: string;
  /** The dataset's compression filter ('gzip'), or null when it is stored plain. */
  compression?: string | null;
  attrs: Record<string, unknown>;
  value?: unknown;
  head?: string;
}

const H5DUMP = String.raw`
import json, math, sys
import h5py, numpy as np

def plain(v):
    if isinstance(v, bytes):
        return v.decode('utf-8', 'replace')
    if isinstance(v, h5py.Reference):
        return 'ref'
    if isinstance(v, np.ndarray):
        return [plain(x) for x in (v.tolist() if v.dtype.kind not in 'OV' else list(v))]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, complex):
        return {'re': plain(v.real), 'im': plain(v.imag)}
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    return v

def attrs_of(obj):
    return {k: plain(obj.attrs[k]) for k in obj.attrs if k not in ('DIMENSION_LIST', 'REFERENCE_LIST')}

out = {}
with h5py.File(sys.argv[1], 'r') as f:
    out['/'] = {'attrs': attrs_of(f), 'group': True}
    def visit(name, obj):
        entry = {'attrs': attrs_of(obj)}
        if isinstance(obj, h5py.Dataset):
            entry['shape'] = list(obj.shape)
            entry['dtype'] = 'str' if h5py.check_string_dtype(obj.dtype) else obj.dtype.str
            entry['compression'] = obj.compression
            if obj.dtype == np.uint8 and obj.ndim == 1:
                entry['head'] = obj[:8].tobytes().hex()
            if obj.size <= 64:
                entry['value'] = plain(obj.asstr()[()] if entry['dtype'] == 'str' else obj[()])
        else:
            entry['group'] = True
        out[name] = entry
    f.visititems(visit)
print(json.dumps(out))
`;

/** Every object of an HDF5 file, read back with h5py. */
export async function h5dump(file: string): Promise<Map<string, H5Entry>> {
  const { stdout } = await execa(TEST_PYTHON, ['-c', H5DUMP, file]);
  return new Map(Object.entries(JSON.parse(stdout) as Record<string, H5Entry>));
}

export function entry(dump: Map<string, H5Entry>, name: string): H5Entry {
  const e = dump.get(name);
  assert.ok(e, `no ${name} in the HDF5 file; it has ${[...dump.keys()].join(', ')}`);
  return e;
}

/** Runs a Python snippet (argv after it) with the test interpreter and parses its JSON output. */
export async function pythonJson<T>(code: string, args: string[] = []): Promise<T> {
  const { stdout } = await execa(TEST_PYTHON, ['-c', code, ...args], {
    env: { PYTHONPATH: path.join(REPO_ROOT, 'python-shim') },
  });
  return JSON.parse(stdout) as T;
}

/** A synthetic proposal from the fixture generator. */
export async function makeSampleProposal(root: string, args: string[] = []): Promise<void> {
  await execa(TEST_PYTHON, [GENERATOR, root, ...args]);
}

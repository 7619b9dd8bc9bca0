// The shim's `run` command when things go wrong: each error path and its message, dependency
// trees, skipped variables, fatal runs, results replaced in the HDF5 file, myMdC sources, and a
// kill -9 in the middle of writing.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeTempDir } from '../helpers/cli.js';
import { TEST_PYTHON } from '../helpers/paths.js';
import { HEADER, h5PathFor, readChannel, result, runOk, runShim, shimArgs, writeContext, type RunOutput } from './runner-helpers.js';
import { entry, h5dump } from '../helpers/python.js';

const tmp = makeTempDir('damnit-runner-errors-');
after(() => tmp.cleanup());

function errorOf(out: RunOutput, name: string): { error: unknown; error_cls: unknown } {
  const r = result(out, name);
  assert.equal(r.value, null);
  assert.equal(r.summary_method, null);
  assert.equal(r.summary_type, null);
  assert.equal(r.max_diff, null);
  assert.ok(r.attributes, `${name} has no error attributes`);
  return { error: r.attributes.error, error_cls: r.attributes.error_cls };
}

const FAILURES = HEADER + `
import datetime

@Variable(title="Zero")
def zero(run):
    return 1 / 0

@Variable(title="Two lines")
def two_lines(run):
    raise ValueError("first line\\nsecond line")

@Variable(title="Silent")
def silent(run):
    raise KeyError()

@Variable(title="Needs zero")
def needs_zero(run, z: "var#zero"):
    return z

@Variable(title="Needs chain")
def needs_chain(run, a: "var#needs_zero", b: "var#two_lines", c: "var#silent"):
    return a

@Variable(title="Default used")
def default_used(run, z: "var#zero" = 42):
    return z

@Variable(title="Skipper")
def skipper(run):
    raise Skip("no beam in this run")

@Variable(title="Needs skipper")
def needs_skipper(run, s: "var#skipper"):
    return s

@Variable(title="Nothing")
def nothing(run):
    return None

@Variable(title="Also nothing")
def also_nothing(run):
    pass

@Variable(title="Needs nothing")
def needs_nothing(run, a: "var#nothing", b: "var#also_nothing"):
    return a

@Variable(title="Bad annotation")
def bad_annotation(run, x: "foo#bar"):
    return 1

@Variable(title="Objects")
def objects(run):
    return [object(), 1]

@Variable(title="When")
def when(run):
    return datetime.datetime(2026, 1, 1)

@Variable(title="Mapping")
def mapping(run):
    return {"a": 1}

@Variable(title="Unicode array")
def unicode_array(run):
    return np.array(["a", "b"])

@Variable(title="Object summary")
def object_summary(run):
    return Cell(1, summary_value={"a": 1})

@Variable(title="Bad colour")
def bad_colour(run):
    return Cell(1, background="yellow")

@Variable(title="Bad units")
def bad_units(run):
    return Cell(1, units=5)

@Variable(title="Bad preview")
def bad_preview(run):
    return Cell(1, preview=np.zeros((2, 2, 2)))

@Variable(title="Not NetCDF")
def not_netcdf(run):
    import xarray as xr
    return xr.DataArray(np.arange(3), dims=["x"], attrs={"nested": {"a": 1}})

@Variable(title="Broken transient", transient=True)
def broken_transient(run):
    raise RuntimeError("transient failure")

@Variable(title="Needs transient")
def needs_transient(run, t: "var#broken_transient"):
    return t

@Variable(title="Fine")
def fine(run):
    print("hello from fine")
    return 1
`;

describe('run: errors of variables are results', () => {
  let out: RunOutput;
  const dir = path.join(tmp.dir, 'failures');

  before(async () => {
    out = await runOk(writeContext(dir, FAILURES));
  });

  test('an exception: message and class, traceback in the log, the others go on', async () => {
    assert.deepEqual(errorOf(out, 'zero'), { error: 'division by zero', error_cls: 'ZeroDivisionError' });
    assert.match(out.stderr, /Could not get data for zero\nTraceback \(most recent call last\):[\s\S]*ZeroDivisionError: division by zero/);
    assert.deepEqual(errorOf(out, 'silent'), { error: '', error_cls: 'KeyError' });
    assert.deepEqual(result(out, 'fine').value, { t: 'int', v: '1' });
    assert.match(out.stdout, /hello from fine/, "the user's prints go to stdout");
    const dump = await h5dump(h5PathFor(dir));
    const stored = entry(dump, '.errors/zero');
    assert.equal(stored.value, 'division by zero');
    assert.equal(stored.attrs.type, 'ZeroDivisionError');
    assert.ok(!dump.has('zero') && !dump.has('.reduced/zero'));
  });

  test('DependencyError draws the chain of failures as a tree', () => {
    assert.deepEqual(errorOf(out, 'needs_zero'), {
      error: 'Skipped due to missing dependency:\n└ (zero) failed: ZeroDivisionError: division by zero',
      error_cls: 'DependencyError',
    });
    assert.deepEqual(errorOf(out, 'needs_chain'), {
      error: [
        'Skipped due to missing dependency:',
        '├ (needs_zero) skipped',
        '│  └ (zero) failed: ZeroDivisionError: division by zero',
        '├ (two_lines) failed: ValueError: first line',
        '│  second line',
        '└ (silent) failed: KeyError',
      ].join('\n'),
      error_cls: 'DependencyError',
    });
    assert.match(out.stderr, /Skipping needs_zero because of missing dependencies: zero/);
  });

  test('a default is used when the dependency produced nothing', () => {
    assert.deepEqual(result(out, 'default_used').value, { t: 'int', v: '42' });
  });

  test('Skip is recorded as an error of class Skip, and so are its dependants', () => {
    assert.deepEqual(errorOf(out, 'skipper'), { error: 'no beam in this run', error_cls: 'Skip' });
    assert.deepEqual(errorOf(out, 'needs_skipper'), {
      error: 'Skipped due to missing dependency:\n└ (skipper) failed: Skip: no beam in this run',
      error_cls: 'Skip',
    });
  });

  test('dependencies that returned None: "Dependencies returned no data"', () => {
    assert.deepEqual(errorOf(out, 'needs_nothing'), {
      error: "Dependencies returned no data:\n- 'nothing'\n- 'also_nothing'",
      error_cls: 'Skip',
    });
    assert.ok(!out.results.has('nothing') && !out.results.has('also_nothing'));
  });

  test('an unknown annotation fails only that variable', () => {
    assert.deepEqual(errorOf(out, 'bad_annotation'), {
      error: "Unknown path 'foo#bar' for variable 'Bad annotation'",
      error_cls: 'RuntimeError',
    });
  });

  test('unstorable values are TypeErrors naming the numpy array tried, as the reference says', () => {
    const unstorable = { error: "Returned data type <class 'numpy.ndarray'> cannot be saved", error_cls: 'TypeError' };
    assert.deepEqual(errorOf(out, 'objects'), unstorable);
    assert.deepEqual(errorOf(out, 'when'), unstorable);
    assert.deepEqual(errorOf(out, 'mapping'), unstorable);
    assert.deepEqual(errorOf(out, 'unicode_array'), {
      error: "Returned data type <class 'numpy.ndarray'> whose native array type <U1 cannot be saved",
      error_cls: 'TypeError',
    });
    assert.deepEqual(errorOf(out, 'object_summary'), {
      error: "summary_value should be number or string, not <class 'dict'>",
      error_cls: 'TypeError',
    });
  });

  test('bad display options fail the variable', () => {
    assert.deepEqual(errorOf(out, 'bad_colour'), {
      error: "Colour string should be hex code (like '#ffcc00')",
      error_cls: 'ValueError',
    });
    assert.deepEqual(errorOf(out, 'bad_units'), {
      error: "units should be a string, not <class 'int'>",
      error_cls: 'TypeError',
    });
    assert.deepEqual(errorOf(out, 'bad_preview'), {
      error: 'preview should be a 1D or 2D array (shape is (2, 2, 2))',
      error_cls: 'TypeError',
    });
  });

  test('a value the file format refuses becomes that variable error, nothing partial is left', async () => {
    const failure = errorOf(out, 'not_netcdf');
    assert.equal(failure.error_cls, 'StoreError');
    assert.match(String(failure.error), /^Result could not be saved as NetCDF: /);
    const dump = await h5dump(h5PathFor(dir));
    assert.ok(!dump.has('not_netcdf') && !dump.has('.reduced/not_netcdf'));
    assert.equal(entry(dump, '.errors/not_netcdf').attrs.type, 'StoreError');
  });

  test('a failed transient variable is not recorded, but its dependants say why', () => {
    assert.ok(!out.results.has('broken_transient'));
    assert.deepEqual(errorOf(out, 'needs_transient'), {
      error: 'Skipped due to missing dependency:\n└ (broken_transient) failed: RuntimeError: transient failure',
      error_cls: 'DependencyError',
    });
  });
});

describe('run: runs that cannot be processed send one fatal message', () => {
  test('a context that fails to load: its problems as context.py:LINE:COL, nothing runs', async () => {
    const dir = path.join(tmp.dir, 'load-error');
    const file = writeContext(dir, HEADER + '@Variable(title="A")\ndef a(run, x: "var#missing"):\n    return 1\n');
    const out = await runShim(file);
    assert.equal(out.exitCode, 1);
    assert.deepEqual(out.messages.map((m) => m.kind), ['hello', 'fatal']);
    const fatal = out.messages[1];
    assert.ok(fatal?.kind === 'fatal');
    assert.equal(fatal.message, "context.py failed to load:\ncontext.py:5:1: Missing dependency: 'missing' for 'a'");
    assert.ok(!existsSync(h5PathFor(dir)));

    const syntax = await runShim(writeContext(path.join(tmp.dir, 'syntax'), 'def f(:\n'));
    const syntaxFatal = syntax.messages.at(-1);
    assert.ok(syntaxFatal?.kind === 'fatal');
    assert.match(syntaxFatal.message, /^context\.py failed to load:\ncontext\.py:1:7: /);
  });

  test('a context file that does not exist', async () => {
    const dir = path.join(tmp.dir, 'no-context');
    writeContext(dir, '');
    const out = await runShim(path.join(dir, 'missing.py'));
    assert.equal(out.exitCode, 1);
    const fatal = out.messages.at(-1);
    assert.ok(fatal?.kind === 'fatal');
    assert.match(fatal.message, /^Cannot read the context file .*missing\.py: No such file or directory$/);
  });

  test('a run directory that does not exist', async () => {
    const dir = path.join(tmp.dir, 'no-run');
    const out = await runShim(writeContext(dir, HEADER + '@Variable\ndef a(run):\n    return 1\n'), {
      mock: false,
      run: 42,
      proposalPath: path.join(dir, 'proposal'),
    });
    assert.equal(out.exitCode, 1);
    const fatal = out.messages.at(-1);
    assert.ok(fatal?.kind === 'fatal');
    assert.match(fatal.message, /^Run 42 of proposal 1234 cannot be opened from .*proposal: /);
    assert.ok(!out.messages.some((m) => m.kind === 'run_started'));
  });

  test('bad arguments: exit 2 with the problem', async () => {
    const dir = path.join(tmp.dir, 'bad-args');
    const out = await runShim(writeContext(dir, ''), { extra: ['--cluster', 'sometimes'] });
    assert.equal(out.exitCode, 2);
    const fatal = out.messages.at(-1);
    assert.ok(fatal?.kind === 'fatal');
    assert.match(fatal.message, /^run: argument --cluster: invalid choice: 'sometimes'/);
    const badSource = await runShim(writeContext(dir, ''), { extra: ['--mymdc-source', 'ftp://x'] });
    assert.equal(badSource.exitCode, 2);
  });
});

describe('run: a new result replaces the old one in the HDF5 file', () => {
  const dir = path.join(tmp.dir, 'replace');
  const context = (xBody: string) =>
    writeContext(dir, HEADER +
      `@Variable(title="X")\ndef x(run):\n    ${xBody}\n\n` +
      '@Variable(title="Y")\ndef y(run):\n    return Cell(np.arange(5.0), preview=np.ones((2, 2)))\n');

  test('an error removes old data and summary; a later value removes the error; others are kept', async () => {
    await runOk(context('return np.arange(10.0)'));
    let dump = await h5dump(h5PathFor(dir));
    assert.ok(dump.has('x/data') && dump.has('.reduced/x') && dump.has('.preview/y'));

    await runOk(context('raise ValueError("now broken")'), { extra: ['--match', 'x'] });
    dump = await h5dump(h5PathFor(dir));
    assert.equal(entry(dump, '.errors/x').value, 'now broken');
    assert.ok(!dump.has('x') && !dump.has('.reduced/x'), 'old data and summary of x are gone');
    assert.ok(dump.has('y/data') && dump.has('.reduced/y') && dump.has('.preview/y'), 'y untouched');

    const out = await runOk(context('return "back"'), { extra: ['--match', 'X'] });
    assert.deepEqual([...out.results.keys()], ['x'], '--match is case-insensitive on titles');
    dump = await h5dump(h5PathFor(dir));
    assert.ok(!dump.has('.errors/x'));
    assert.equal(entry(dump, 'x/data').value, 'back');
    assert.ok(dump.has('.preview/y'));
  });

  test('a variable returning None keeps its previous value', async () => {
    const sub = path.join(dir, 'none');
    await runOk(writeContext(sub, HEADER + '@Variable\ndef v(run):\n    return 5\n'));
    const out = await runOk(writeContext(sub, HEADER + '@Variable\ndef v(run):\n    return None\n'));
    assert.ok(!out.results.has('v'));
    assert.equal(entry(await h5dump(h5PathFor(sub)), 'v/data').value, 5);
  });
});

describe('run: --match and --cluster select variables, dependencies are added back', () => {
  test('dependencies of matched variables run too, in order', async () => {
    const dir = path.join(tmp.dir, 'match');
    const file = writeContext(dir, HEADER +
      '@Variable(title="Base")\ndef base(run):\n    return 1\n\n' +
      '@Variable(title="Middle", cluster=True)\ndef middle(run, b: "var#base"):\n    return b + 1\n\n' +
      '@Variable(title="Top level")\ndef top(run, m: "var#middle"):\n    return m + 1\n\n' +
      '@Variable(title="Other")\ndef other(run):\n    return 0\n');
    const matched = await runOk(file, { extra: ['--match', 'TOP'] });
    assert.deepEqual([...matched.results.keys()], ['base', 'middle', 'top']);
    assert.deepEqual(result(matched, 'top').value, { t: 'int', v: '3' });

    // `top` depends on a cluster variable, so it is promoted to cluster too.
    const local = await runOk(file, { extra: ['--cluster', 'exclude'] });
    assert.deepEqual([...local.results.keys()], ['base', 'other']);
    const cluster = await runOk(file, { extra: ['--cluster', 'only'] });
    assert.deepEqual([...cluster.results.keys()], ['base', 'middle', 'top']);
  });
});

describe('run: mymdc# arguments come from a pluggable source', () => {
  const CONTEXT = HEADER +
    '@Variable(title="Sample")\ndef sample(run, s: "mymdc#sample_name"):\n    return s\n\n' +
    '@Variable(title="Type")\ndef run_type(run, t: "mymdc#run_type"):\n    return t\n\n' +
    '@Variable(title="Techniques")\ndef techniques(run, t: "mymdc#techniques"):\n    return ", ".join(x["name"] for x in t)\n';

  test('a local JSON file', async () => {
    const dir = path.join(tmp.dir, 'mymdc-file');
    const file = writeContext(dir, CONTEXT);
    const json = path.join(dir, 'mymdc.json');
    writeFileSync(json, JSON.stringify({ 1: { sample_name: 'gold foil', run_type: 'dark', techniques: [{ name: 'XAS' }, { name: 'XES' }] } }));
    const out = await runOk(file, { extra: ['--mymdc-source', `file:${json}`] });
    assert.deepEqual(result(out, 'sample').value, { t: 'str', v: 'gold foil' });
    assert.deepEqual(result(out, 'run_type').value, { t: 'str', v: 'dark' });
    assert.deepEqual(result(out, 'techniques').value, { t: 'str', v: 'XAS, XES' });

    const missing = await runOk(file, { run: 2, extra: ['--mymdc-source', `file:${json}`] });
    assert.deepEqual(errorOf(missing, 'sample'), {
      error: `No myMdC metadata for run 2 in ${json}`,
      error_cls: 'MymdcError',
    });
  });

  test('the facility client: token file and REST endpoints (served locally)', async () => {
    const requests: string[] = [];
    const server = http.createServer((req, res) => {
      requests.push(`${req.headers['x-api-key']} ${req.url}`);
      const bodies: Record<string, unknown> = {
        '/api/mymdc/proposals/by_number/1234/runs/1': { runs: [{ id: 77, sample_id: 5, experiment_id: 9 }] },
        '/api/mymdc/samples/5': { name: 'water jet' },
        '/api/mymdc/experiments/9': { name: 'pump-probe' },
        '/api/mymdc/runs/77': { techniques: [{ name: 'SAXS' }] },
      };
      const body = bodies[req.url ?? ''];
      res.writeHead(body ? 200 : 404, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body ?? { error: 'not found' }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const port = (server.address() as AddressInfo).port;
      const dir = path.join(tmp.dir, 'mymdc-http');
      const file = writeContext(dir, CONTEXT);
      const proposal = path.join(dir, 'proposal');
      writeContext(path.join(proposal, 'usr'), '');
      writeFileSync(path.join(proposal, 'usr', 'mymdc-credentials.yml'), `token: secret-token\nserver: http://127.0.0.1:${port}\n`);
      const out = await runOk(file, { proposalPath: proposal });
      assert.deepEqual(result(out, 'sample').value, { t: 'str', v: 'water jet' });
      assert.deepEqual(result(out, 'run_type').value, { t: 'str', v: 'pump-probe' });
      assert.deepEqual(result(out, 'techniques').value, { t: 'str', v: 'SAXS' });
      assert.ok(requests.every((r) => r.startsWith('secret-token ')), 'the token is sent as X-API-key');
      assert.equal(requests.filter((r) => r.endsWith('/runs/1')).length, 1, 'run information is fetched once');

      const noToken = await runOk(file, { proposalPath: path.join(dir, 'elsewhere') });
      const failure = errorOf(noToken, 'sample');
      assert.equal(failure.error_cls, 'MymdcError');
      assert.match(String(failure.error), /^myMdC needs a token: cannot read .*elsewhere\/usr\/mymdc-credentials\.yml/);
    } finally {
      server.close();
    }
  });
});

describe('run: kill -9 while the HDF5 file is being written', () => {
  test('the previous file stays readable, the half-written staging is dropped, the next run succeeds', async () => {
    const dir = path.join(tmp.dir, 'kill');
    const marker = path.join(dir, 'writing-started');
    const base = HEADER +
      '@Variable(title="Kept")\ndef kept(run):\n    return 1\n\n' +
      '@Variable(title="Small")\ndef small(run):\n    return SMALL\n';
    await runOk(writeContext(dir, base.replace('SMALL', '1')));

    // The figure draws once for its thumbnail, then again while the new file is open:
    // the second draw signals and hangs, and we kill the process there.
    const blocking = base.replace('SMALL', '2') + `
import os, time
import matplotlib
matplotlib.use("Agg")
from matplotlib.figure import Figure

class SlowFigure(Figure):
    draws = 0
    def draw(self, renderer):
        SlowFigure.draws += 1
        if SlowFigure.draws == 2:
            open(${JSON.stringify(marker)}, "w").close()
            time.sleep(600)
        return super().draw(renderer)

@Variable(title="Blocker")
def blocker(run):
    fig = SlowFigure()
    fig.add_subplot().plot([1, 2])
    return fig
`;
    const file = writeContext(dir, blocking);
    const channel = path.join(dir, 'killed.jsonl');
    const child = spawn(TEST_PYTHON, shimArgs(file, channel, { extra: ['--match', 'small', '--match', 'blocker'] }), {
      cwd: dir,
      stdio: 'ignore',
    });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    while (!existsSync(marker)) {
      assert.equal(child.exitCode, null, 'the run ended before writing');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.ok(readdirSync(path.join(dir, 'extracted_data')).some((f) => f.includes('.writing-')),
      'killed while its staging file is open');
    child.kill('SIGKILL');
    assert.equal(await exited, 'SIGKILL');

    // `small` was staged and reported; `blocker` was being written: its staging is not consistent.
    assert.deepEqual(readChannel(channel).map((m) => m.kind),
      ['hello', 'run_started', 'variable_started', 'variable_result', 'variable_started']);
    let dump = await h5dump(h5PathFor(dir));
    assert.equal(entry(dump, 'small/data').value, 1);
    assert.equal(entry(dump, 'kept/data').value, 1);
    assert.ok(!dump.has('blocker'));

    const out = await runOk(writeContext(dir, base.replace('SMALL', '3')), { extra: ['--match', 'small'] });
    assert.deepEqual(result(out, 'small').value, { t: 'int', v: '3' });
    dump = await h5dump(h5PathFor(dir));
    assert.equal(entry(dump, 'small/data').value, 3);
    assert.equal(entry(dump, 'kept/data').value, 1);
    assert.deepEqual(readdirSync(path.join(dir, 'extracted_data')).filter((f) => !f.startsWith('.')), ['p1234_r1.h5'],
      'the stale staging is removed');
  });
});

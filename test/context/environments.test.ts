// Custom Python environments (context_python): the probe, and contexts run in real interpreters:
// Debian's Python (with extra_data), a bare virtual environment (without it, nor numpy), and a
// virtual environment with a package only it has.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { execa } from 'execa';
import { CONTEXT_PACKAGES, installCommand, probePackages } from '../../src/context/interpreter.js';
import { makeTempDir, runCli } from '../helpers/cli.js';
import { TEST_PYTHON } from '../helpers/paths.js';

const tmp = makeTempDir('damnit-environments-');
after(() => tmp.cleanup());

const ALL_PIP_NAMES = 'extra_data pyyaml requests scipy numpy h5py';

/** A virtual environment made by Debian's Python (without pip: nothing is installed into it). */
async function makeVenv(name: string, systemSitePackages: boolean): Promise<string> {
  const dir = path.join(tmp.dir, name);
  await execa(TEST_PYTHON, ['-m', 'venv', '--without-pip', ...(systemSitePackages ? ['--system-site-packages'] : []), dir]);
  return path.join(dir, 'bin', 'python');
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

let counter = 0;

async function database(context: string): Promise<string> {
  counter += 1;
  const dir = path.join(tmp.dir, `db${counter}`);
  mkdirSync(dir);
  writeFileSync(path.join(dir, 'context.py'), context);
  const res = await runCli(['proposal', '1234'], { cwd: dir });
  assert.equal(res.code, 0, res.stderr);
  return dir;
}

function valueOf(dir: string, name: string): unknown {
  const conn = new Database(path.join(dir, 'runs.sqlite'), { readonly: true });
  try {
    const row = conn.prepare('SELECT value FROM run_variables WHERE name = ?').get(name) as { value: unknown } | undefined;
    return row?.value;
  } finally {
    conn.close();
  }
}

describe('probePackages', () => {
  test("Debian's Python has every package contexts need, with versions", async () => {
    const packages = await probePackages(TEST_PYTHON);
    assert.deepEqual(packages.map((p) => p.module), ['extra_data', 'yaml', 'requests', 'scipy', 'numpy', 'h5py']);
    for (const p of packages) {
      assert.equal(p.error, null, `${p.module}: ${p.error}`);
      assert.match(p.version ?? '', /^\d+\.\d+/, p.module);
    }
  });

  test('a bare virtual environment has none of them, each with the reason', async () => {
    const packages = await probePackages(await makeVenv('probe-bare', false));
    for (const p of packages) {
      assert.equal(p.version, null);
      assert.equal(p.error, `ModuleNotFoundError: No module named '${p.module}'`);
    }
  });

  test('the install command runs pip with the interpreter itself, quoted for a shell when needed', () => {
    assert.equal(installCommand('/opt/env/bin/python', CONTEXT_PACKAGES), `/opt/env/bin/python -m pip install ${ALL_PIP_NAMES}`);
    assert.equal(installCommand("/home/o'neil/my env/python", [{ module: 'yaml', pip: 'pyyaml' }]), `'/home/o'\\''neil/my env/python' -m pip install pyyaml`);
  });
});

describe('db-config context_python', () => {
  test('an interpreter with everything: stored without a word', async () => {
    const dir = await database('');
    const res = await runCli(['db-config', 'context_python', TEST_PYTHON], { cwd: dir });
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stderr, '');
  });

  test('missing packages are named with how to install them; the value is stored anyway', async () => {
    const dir = await database('');
    const venv = await makeVenv('config-bare', false);
    const res = await runCli(['db-config', 'context_python', venv], { cwd: dir });
    assert.equal(res.code, 0, res.stderr);
    const version = (await execa(venv, ['-c', 'import platform; print(platform.python_version())'])).stdout;
    assert.equal(
      res.stderr,
      `Warning: context_python ${venv} (Python ${version}) lacks packages contexts need: extra_data, pyyaml, requests, scipy, numpy, h5py; stored anyway\n` +
        `  install them with: ${venv} -m pip install ${ALL_PIP_NAMES}\n`,
    );
    assert.equal((await runCli(['db-config', 'context_python'], { cwd: dir })).stdout, `'${venv}'\n`);
  });

  test('an interpreter that cannot run is stored with a warning saying why', async () => {
    const dir = await database('');
    const missing = path.join(tmp.dir, 'no-such-env', 'bin', 'python');
    const res = await runCli(['db-config', 'context_python', missing], { cwd: dir });
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stderr, `Warning: context_python ${missing} does not exist; stored anyway, but contexts cannot run until it is fixed\n`);
    assert.equal((await runCli(['db-config', 'context_python'], { cwd: dir })).stdout, `'${missing}'\n`);
  });

});

/** The pyenv build of Python `version` (3.9, 3.12) if this machine has one. */
function pyenvPython(version: string): string | undefined {
  const versions = path.join(os.homedir(), '.pyenv', 'versions');
  if (!existsSync(versions)) return undefined;
  const build = readdirSync(versions).find((d) => d.startsWith(`${version}.`));
  const python = build && path.join(versions, build, 'bin', `python${version}`);
  return python && existsSync(python) ? python : undefined;
}

const PLAIN_CONTEXT = 'from damnit_ctx import Variable\n\n@Variable(title="A")\ndef a(run):\n    return 1\n';

describe('contexts in the environment context_python names', () => {
  test('in a bare virtual environment, a run fails naming the missing modules and how to install them', async () => {
    const venv = await makeVenv('run-bare', false);
    const dir = await database(PLAIN_CONTEXT);
    await runCli(['db-config', 'context_python', venv], { cwd: dir });
    const res = await runCli(['reprocess', '1', '--mock'], { cwd: dir });
    assert.equal(res.code, 1);
    assert.match(res.stdout, /Processed 1 run: 0 ok, 1 failed/);
    const message =
      `${venv} cannot run context variables: No module named 'h5py'. Install them into that environment ` +
      `(${venv} -m pip install numpy h5py), or choose another interpreter with 'amore-proto db-config context_python /path/to/python'`;
    assert.match(res.stderr, new RegExp(`^r1 \\(p1234\\): FAILED in [\\d.]+ s: ${escapeRegExp(message)}$`, 'm'));
  });

  test('a context importing extra_data loads with Debian\'s Python, and fails naming extra_data in the bare environment', async () => {
    const dir = await database('import extra_data\n' + PLAIN_CONTEXT);
    await runCli(['db-config', 'context_python', TEST_PYTHON], { cwd: dir });
    const debian = await runCli(['read-context'], { cwd: dir });
    assert.equal(debian.code, 0, debian.stderr);

    await runCli(['db-config', 'context_python', await makeVenv('read-bare', false)], { cwd: dir });
    const bare = await runCli(['read-context'], { cwd: dir });
    assert.equal(bare.code, 1);
    assert.match(bare.stderr, /^context\.py:1:\d+: ModuleNotFoundError: No module named 'extra_data'$/m);
  });

  describe('a package only one environment has', () => {
    let venv: string;
    let dir: string;
    const CONTEXT =
      'import beamline_tools\nfrom damnit_ctx import Variable\n\n' +
      '@Variable(title="Calibrated")\ndef calibrated(run):\n    return beamline_tools.calibrate(2)\n';

    before(async () => {
      // A venv that also sees Debian's packages, plus a module installed into it alone.
      venv = await makeVenv('with-tools', true);
      const sitePackages = (await execa(venv, ['-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'])).stdout.trim();
      writeFileSync(path.join(sitePackages, 'beamline_tools.py'), 'def calibrate(x):\n    return x * 1.5\n');
      dir = await database(CONTEXT);
    });

    test('works when context_python points to that environment', async () => {
      const config = await runCli(['db-config', 'context_python', venv], { cwd: dir });
      assert.equal(config.stderr, '', 'it has every package contexts need');
      const res = await runCli(['reprocess', '1', '--mock'], { cwd: dir });
      assert.equal(res.code, 0, res.stderr);
      assert.equal(valueOf(dir, 'calibrated'), 3);
    });

    test('fails with a message naming the missing module otherwise, changing nothing', async () => {
      await runCli(['db-config', 'context_python', TEST_PYTHON], { cwd: dir });
      const res = await runCli(['reprocess', '1', '--mock'], { cwd: dir });
      assert.equal(res.code, 1);
      assert.match(res.stderr, /^context\.py:1:\d+: ModuleNotFoundError: No module named 'beamline_tools'$/m);
      assert.match(res.stderr, /^Error: context\.py cannot be loaded; no run was processed$/m);
      assert.equal(valueOf(dir, 'calibrated'), 3, 'the earlier result stays');
    });
  });

  for (const version of ['3.9', '3.12']) {
    const python = pyenvPython(version);
    test(`Python ${version}: the probe and the shim's own messages work there too`, { skip: python ? false : `no Python ${version} here` }, async () => {
      const dir = await database(PLAIN_CONTEXT);
      const config = await runCli(['db-config', 'context_python', python!], { cwd: dir });
      assert.equal(config.code, 0);
      assert.match(config.stderr, new RegExp(`^Warning: context_python .* \\(Python ${version.replace('.', '\\.')}\\.\\d+\\) lacks packages contexts need: .*numpy, h5py; stored anyway$`, 'm'));
      const read = await runCli(['read-context'], { cwd: dir });
      assert.equal(read.code, 0, read.stderr);
      const run = await runCli(['reprocess', '1', '--mock'], { cwd: dir });
      assert.equal(run.code, 1);
      assert.match(run.stderr, /cannot run context variables: No module named '(numpy|h5py)'\. Install them into that environment \(.* -m pip install numpy h5py\)/);
    });
  }
});

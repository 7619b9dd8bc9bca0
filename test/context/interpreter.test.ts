// Choosing and probing the interpreter that runs a context, with real programs.
import assert from 'node:assert/strict';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { z } from 'zod';
import { CliError } from '../../src/cli/errors.js';
import {
  chooseContextPython,
  InterpreterProblem,
  probePython,
  requireContextPython,
  runPythonSnippet,
} from '../../src/context/interpreter.js';
import { makeTempDir } from '../helpers/cli.js';
import { TEST_PYTHON } from '../helpers/paths.js';

const tmp = makeTempDir('damnit-interpreter-');
after(() => tmp.cleanup());

function script(name: string, body: string, mode = 0o755): string {
  const file = path.join(tmp.dir, name);
  writeFileSync(file, body);
  chmodSync(file, mode);
  return file;
}

async function problemOf(python: string): Promise<InterpreterProblem> {
  try {
    await probePython(python);
  } catch (err) {
    assert.ok(err instanceof InterpreterProblem, String(err));
    return err;
  }
  assert.fail(`${python} was accepted`);
}

describe('chooseContextPython', () => {
  test('the database setting wins, then $DAMNIT_CONTEXT_PYTHON, then the default', () => {
    const env = { DAMNIT_CONTEXT_PYTHON: '/opt/env/bin/python' };
    assert.deepEqual(chooseContextPython('/my/python', env), { python: '/my/python', source: 'context_python' });
    assert.deepEqual(chooseContextPython(null, env), { python: '/opt/env/bin/python', source: 'DAMNIT_CONTEXT_PYTHON' });
    assert.deepEqual(chooseContextPython('  ', env), { python: '/opt/env/bin/python', source: 'DAMNIT_CONTEXT_PYTHON' });
    assert.deepEqual(chooseContextPython(undefined, {}), { python: '/usr/bin/python3', source: 'default' });
  });
});

describe('probePython', () => {
  test('a real interpreter: its version and executable', async () => {
    const info = await probePython(TEST_PYTHON);
    assert.match(info.version, /^3\.\d+\.\d+$/);
    assert.equal(info.version_info[0], 3);
    assert.ok(info.version_info[1] >= 9);
    assert.ok(info.executable.length > 0);
  });

  test('a path that does not exist', async () => {
    const problem = await problemOf(path.join(tmp.dir, 'missing', 'python'));
    assert.equal(problem.problem, 'does not exist');
  });

  test('a command that is not on PATH', async () => {
    const problem = await problemOf('no-such-python-anywhere-3.11');
    assert.equal(problem.problem, 'was not found on PATH');
  });

  test('a file that is not executable', async () => {
    const problem = await problemOf(script('not-executable', '#!/bin/sh\n', 0o644));
    assert.match(problem.problem, /is not executable/);
  });

  test('a directory', async () => {
    const problem = await problemOf(tmp.dir);
    assert.match(problem.problem, /is a directory/);
  });

  test('a program that is not Python (a shell script)', async () => {
    const problem = await problemOf(script('not-python', '#!/bin/sh\necho "hello, I am a shell script"\n'));
    assert.match(problem.problem, /is not a Python interpreter/);
    assert.match(problem.output ?? '', /hello, I am a shell script/);
  });

  test('a Python older than 3.9', async () => {
    // Answers the probe the way Python 3.8 does.
    const old = script(
      'python3.8',
      '#!/bin/sh\necho \'{"version": "3.8.18", "version_info": [3, 8, 18], "executable": "/opt/py38/bin/python", "prefix": "/opt/py38"}\'\n',
    );
    const problem = await problemOf(old);
    assert.equal(problem.problem, 'is Python 3.8.18; context files need Python 3.9 or newer');
  });

  test('an interpreter that hangs does not hang the probe', async () => {
    const hanging = script('hanging-python', '#!/bin/sh\nexec sleep 60\n');
    await assert.rejects(
      runPythonSnippet(hanging, 'print(1)', z.number(), { timeoutMs: 300 }),
      (err: unknown) => err instanceof InterpreterProblem && /did not answer within 0.3 s/.test(err.problem),
    );
  });

  test('a working interpreter is probed once per path; a failing one again next time', async () => {
    const counter = path.join(tmp.dir, 'probe-count');
    writeFileSync(counter, '');
    const counting = script(
      'counting-python',
      `#!/bin/sh\necho x >> ${counter}\nexec ${TEST_PYTHON} "$@"\n`,
    );
    const first = await probePython(counting);
    const second = await probePython(counting);
    assert.deepEqual(second, first);
    assert.equal(readFileSync(counter, 'utf8').trim().split('\n').length, 1);

    const flaky = script('flaky-python', `#!/bin/sh\necho x >> ${counter}\nexit 1\n`);
    await assert.rejects(probePython(flaky));
    await assert.rejects(probePython(flaky));
    assert.equal(readFileSync(counter, 'utf8').trim().split('\n').length, 3);
  });
});

describe('requireContextPython', () => {
  test('the error names the interpreter, the problem and how to change it', async () => {
    await assert.rejects(requireContextPython(path.join(tmp.dir, 'gone', 'python3')), (err: unknown) => {
      assert.ok(err instanceof CliError);
      assert.equal(
        err.message,
        `the context Python ${path.join(tmp.dir, 'gone', 'python3')} does not exist; ` +
          "change this database's interpreter with 'amore-proto db-config context_python /path/to/python'",
      );
      return true;
    });
  });

  test('an interpreter from $DAMNIT_CONTEXT_PYTHON says so', async () => {
    await assert.rejects(
      requireContextPython(null, { env: { DAMNIT_CONTEXT_PYTHON: path.join(tmp.dir, 'env-python') } }),
      /it comes from \$DAMNIT_CONTEXT_PYTHON: change that, or choose one for this database with 'amore-proto db-config context_python/,
    );
  });

  test('a usable interpreter comes back with its probe', async () => {
    const python = await requireContextPython(TEST_PYTHON);
    assert.equal(python.python, TEST_PYTHON);
    assert.equal(python.source, 'context_python');
    assert.equal(python.info.version_info[0], 3);
  });
});

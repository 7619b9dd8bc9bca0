// The shim process manager with real processes: the real shim in Debian's Python, and small
// shell scripts standing in for an interpreter that misbehaves in one precise way.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { ShimError, startShim, type ShimProcess } from '../../src/context/shim-process.js';
import type { ShimMessage } from '../../src/context/protocol.js';
import { makeTempDir } from '../helpers/cli.js';
import { TEST_PYTHON } from '../helpers/paths.js';
import { processAlive } from '../../src/processes.js';

const tmp = makeTempDir('damnit-shim-process-');
after(() => tmp.cleanup());

/** An executable shell script used in place of a Python interpreter. */
function fakePython(name: string, body: string): string {
  const file = path.join(tmp.dir, name);
  writeFileSync(file, `#!/bin/bash\n${body}\n`);
  chmodSync(file, 0o755);
  return file;
}

function writeContext(name: string, source: string): string {
  const file = path.join(tmp.dir, `${name}.py`);
  writeFileSync(file, source);
  return file;
}

async function collect(shim: ShimProcess): Promise<{ messages: ShimMessage[]; error: unknown }> {
  const messages: ShimMessage[] = [];
  try {
    for await (const message of shim.messages) messages.push(message);
    return { messages, error: undefined };
  } catch (error) {
    return { messages, error };
  }
}

/** Waits until `pid` is gone, for at most `limitMs` (a bound for a hung test, not a measurement). */
async function waitGone(pid: number, limitMs = 10_000): Promise<boolean> {
  const end = Date.now() + limitMs;
  while (Date.now() < end) {
    if (!processAlive(pid)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return !processAlive(pid);
}

describe('startShim', () => {
  test('messages come from the channel; what the context prints comes to onOutput, line by line', async () => {
    const context = writeContext(
      'printing',
      'import sys\n' +
        'print(\'{"protocol": 1, "kind": "fatal", "message": "not from the shim", "traceback": null}\')\n' +
        'print("no newline at the end", end="")\n' +
        'print("warning: something", file=sys.stderr)\n' +
        'from damnit_ctx import Variable\n@Variable\ndef a(run): return 1\n',
    );
    const output: [string, string][] = [];
    const shim = startShim({
      python: TEST_PYTHON,
      command: 'describe',
      args: [context],
      cwd: tmp.dir,
      timeoutMs: 60_000,
      onOutput: (stream, line) => output.push([stream, line]),
      finalKinds: ['context', 'load_error'],
    });
    const { messages, error } = await collect(shim);
    const exit = await shim.exited;
    assert.equal(error, undefined);
    assert.deepEqual(
      messages.map((m) => m.kind),
      ['hello', 'context'],
    );
    assert.deepEqual(exit, { code: 0, signal: null, timedOut: false });
    assert.deepEqual(
      output.filter(([stream]) => stream === 'stdout'),
      [
        ['stdout', '{"protocol": 1, "kind": "fatal", "message": "not from the shim", "traceback": null}'],
        ['stdout', 'no newline at the end'],
      ],
    );
    assert.deepEqual(
      output.filter(([stream]) => stream === 'stderr'),
      [['stderr', 'warning: something']],
    );
  });

  test('a line on the channel that is not a valid message is a protocol error and stops the process', async () => {
    const python = fakePython(
      'garbage-python',
      'echo \'{"protocol": 1, "kind": "hello", "python_version": "3.11.2", "executable": "x", "shim_version": "0"}\' >&3\n' +
        'echo "this is not JSON" >&3\nsleep 30',
    );
    const shim = startShim({ python, command: 'describe', args: [], cwd: tmp.dir, timeoutMs: 60_000 });
    const { messages, error } = await collect(shim);
    const exit = await shim.exited;
    assert.deepEqual(
      messages.map((m) => m.kind),
      ['hello'],
    );
    assert.ok(error instanceof ShimError);
    assert.equal(error.reason, 'protocol');
    assert.match(error.message, /not JSON: this is not JSON/);
    assert.equal(exit.signal, 'SIGTERM');
  });

  test('a message of another protocol version is refused', async () => {
    const python = fakePython(
      'future-python',
      'echo \'{"protocol": 2, "kind": "hello", "python_version": "3.11.2", "executable": "x", "shim_version": "9"}\' >&3',
    );
    const shim = startShim({ python, command: 'describe', args: [], cwd: tmp.dir, timeoutMs: 60_000 });
    const { error } = await collect(shim);
    assert.ok(error instanceof ShimError);
    assert.match(error.message, /protocol 2, this backend speaks 1/);
    await shim.exited;
  });

  test('ending without the final message says how the process ended and what it last printed', async () => {
    const python = fakePython('crashing-python', 'echo "Fatal Python error: Segmentation fault" >&2\nexit 3');
    const shim = startShim({
      python,
      command: 'describe',
      args: [],
      cwd: tmp.dir,
      timeoutMs: 60_000,
      finalKinds: ['context', 'load_error'],
    });
    const { error } = await collect(shim);
    assert.ok(error instanceof ShimError);
    assert.equal(error.reason, 'exited');
    assert.match(error.message, /exited with code 3 before it reported a result/);
    assert.match(error.message, /last output: Fatal Python error: Segmentation fault/);
    assert.deepEqual(await shim.exited, { code: 3, signal: null, timedOut: false });
  });

  test('without finalKinds, the end of the channel simply ends the messages', async () => {
    const python = fakePython('quiet-python', 'exit 0');
    const shim = startShim({ python, command: 'run', args: [], cwd: tmp.dir, timeoutMs: 60_000 });
    const { messages, error } = await collect(shim);
    assert.deepEqual(messages, []);
    assert.equal(error, undefined);
  });

  test('an interpreter that cannot be started is a ShimError, not a crash', async () => {
    const shim = startShim({
      python: path.join(tmp.dir, 'no-such-python'),
      command: 'describe',
      args: [],
      cwd: tmp.dir,
      timeoutMs: 60_000,
      finalKinds: ['context'],
    });
    const { error } = await collect(shim);
    assert.ok(error instanceof ShimError);
    assert.equal(error.reason, 'spawn');
    assert.match(error.message, /no-such-python/);
    assert.equal((await shim.exited).code, null);
  });

  test('the time limit stops the whole process group, children included', async () => {
    const pidFile = path.join(tmp.dir, 'grandchild.pid');
    const context = writeContext(
      'hanging',
      'import subprocess, time\n' +
        `child = subprocess.Popen(["sleep", "300"])\nopen(${JSON.stringify(pidFile)}, "w").write(str(child.pid))\n` +
        'time.sleep(300)\n',
    );
    const shim = startShim({
      python: TEST_PYTHON,
      command: 'describe',
      args: [context],
      cwd: tmp.dir,
      // Long enough for Python to start the child on a busy machine.
      timeoutMs: 4_000,
      finalKinds: ['context', 'load_error'],
    });
    const { error } = await collect(shim);
    const exit = await shim.exited;
    assert.ok(error instanceof ShimError);
    assert.equal(error.reason, 'timeout');
    assert.match(error.message, /stopped after its time limit of 4 s/);
    assert.equal(exit.timedOut, true);
    assert.ok(existsSync(pidFile), 'the context started its child before the limit');
    const grandchild = Number(readFileSync(pidFile, 'utf8'));
    assert.ok(await waitGone(grandchild), 'the context’s child process was stopped too');
  });

  test('kill() escalates to SIGKILL when SIGTERM is ignored', async () => {
    const python = fakePython(
      'stubborn-python',
      "trap '' TERM\n" +
        'echo \'{"protocol": 1, "kind": "hello", "python_version": "3.11.2", "executable": "x", "shim_version": "0"}\' >&3\n' +
        'while true; do sleep 0.1; done',
    );
    const shim = startShim({ python, command: 'run', args: [], cwd: tmp.dir, timeoutMs: 0 });
    const iterator = shim.messages[Symbol.asyncIterator]();
    assert.equal((await iterator.next()).value?.kind, 'hello');
    shim.kill();
    const exit = await shim.exited;
    assert.equal(exit.signal, 'SIGKILL');
    assert.equal(exit.timedOut, false);
    assert.ok(shim.pid !== undefined && (await waitGone(shim.pid)));
  });
});

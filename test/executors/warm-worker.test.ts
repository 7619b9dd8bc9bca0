// The warm worker executor with the real shim in Debian's Python: results identical to a fresh
// interpreter per run, time limits and kills that stop only one child, a worker killed with
// SIGKILL, and the output and messages of concurrent runs kept apart.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import type { VariableResultMessage } from '../../src/context/protocol.js';
import { DatabaseDir } from '../../src/database-dir.js';
import { openDatabase } from '../../src/db/database.js';
import type { OutputSink, RunEnvironment } from '../../src/executors/executor.js';
import { FreshProcessExecutor, timeLimitReason } from '../../src/executors/local.js';
import { WarmWorkerExecutor } from '../../src/executors/warm-worker.js';
import { processRun } from '../../src/runs/process-run.js';
import type { RunOutcome, RunRequest } from '../../src/runs/run-request.js';
import { makeTempDir } from '../helpers/cli.js';
import { TEST_PYTHON } from '../helpers/paths.js';
import { h5dump, makeSampleProposal } from '../helpers/python.js';
import { processAlive } from '../../src/processes.js';

const tmp = makeTempDir('damnit-warm-worker-');
after(() => tmp.cleanup());

const HEADER = 'import os, subprocess, sys, time\nimport numpy as np\nfrom damnit_ctx import Variable, Cell, Skip\n\n';

/** Every kind of result the contract names that these machines can make, from real run data. */
const RICH_CONTEXT = `import numpy as np
import xarray as xr
from damnit_ctx import Variable, Cell

XGM = "SA2_XTD1_XGM/XGM/DOOCS"
CAMERA = "SA2_XTD1_IMGPII/CAM/BEAMVIEW:daqOutput"

@Variable(title="XGM intensity [uJ]", summary="mean")
def xgm_intensity(run):
    xgm = run[f"{XGM}:output", 'data.intensityTD'].xarray()
    return xgm[:, np.where(xgm[0] > 1)[0]].mean(axis=1)

@Variable(title="Pulses")
def pulses(run):
    return run[XGM, 'pulseEnergy.numberOfBunchesActual'].as_single_value()

@Variable(title="Beam X", summary="max", units="mm")
def beam_x(run):
    return run[XGM, 'beamPosition.ixPos'].xarray()

@Variable(title="Camera")
def camera(run):
    return run[CAMERA, 'data.image.pixels'].ndarray().mean(axis=0)

@Variable(title="Trend")
def trend(run, n: "meta#run_number"):
    return np.linspace(0, n, 40)

@Variable(title="Label")
def label(run, n: "meta#run_number", p: "meta#proposal"):
    return f"p{p} r{n}"

@Variable(title="Doubled")
def doubled(run, pulses: "var#pulses"):
    return pulses * 2

@Variable(title="Cell")
def cell(run, trend: "var#trend"):
    return Cell(trend, summary="std", bold=True, background="#ffcc00")

@Variable(title="Complex")
def cplx(run, n: "meta#run_number"):
    return complex(n, -n)

@Variable(title="Broken")
def broken(run):
    raise ValueError("intentional failure")

@Variable(title="Needs broken")
def needs_broken(run, b: "var#broken"):
    return b + 1
`;

let counter = 0;

/** A database directory with `context`, and the environment executors are made with. */
function database(context: string, opts: { proposalPath?: string; timeoutMs?: number; python?: string } = {}): RunEnvironment {
  counter += 1;
  const root = path.join(tmp.dir, `db${counter}`);
  mkdirSync(root, { recursive: true });
  writeFileSync(path.join(root, 'context.py'), context);
  const dir = new DatabaseDir(root);
  openDatabase(dir, { create: true }).close();
  return {
    dir,
    python: opts.python ?? TEST_PYTHON,
    proposalPath: opts.proposalPath ?? path.join(root, 'no-proposal'),
    timeoutMs: opts.timeoutMs ?? 120_000,
    mymdcSource: null,
  };
}

function request(run: number, mock = true): RunRequest {
  return { proposal: 1234, run, runData: 'all', mock, match: [], cluster: 'include' };
}

function ok(outcome: RunOutcome): Extract<RunOutcome, { ok: true }> {
  assert.ok(outcome.ok, `run failed: ${outcome.ok ? '' : `${outcome.reason}\n${outcome.detail ?? ''}`}`);
  return outcome;
}

function values(outcome: RunOutcome): Map<string, VariableResultMessage['value']> {
  return new Map(ok(outcome).variables.map((v) => [v.name, v.value]));
}

/** The processes whose parent is `pid`, from /proc. */
function childrenOf(pid: number): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((entry) => {
      try {
        const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid;
      } catch {
        return false; // gone meanwhile
      }
    })
    .map(Number);
}

/** Polls until `check` holds; `limitMs` bounds a hung test and is no measurement. */
async function waitUntil(check: () => boolean, what: string, limitMs = 60_000): Promise<void> {
  const end = Date.now() + limitMs;
  while (!check()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** The run_variables rows of a database, without their write times. */
function storedRows(env: RunEnvironment): unknown[] {
  const conn = new Database(env.dir.databaseFile, { readonly: true });
  try {
    return conn
      .prepare(
        `SELECT proposal, run, name, version, value, max_diff, provenance, summary_type, summary_method, attributes
         FROM run_variables ORDER BY proposal, run, name`,
      )
      .all();
  } finally {
    conn.close();
  }
}

describe('WarmWorkerExecutor', () => {
  let proposalPath: string;
  before(async () => {
    proposalPath = path.join(tmp.dir, 'proposal');
    await makeSampleProposal(proposalPath, ['--runs', '3', '--trains', '20']);
  });

  test('records the same rows and writes the same HDF5 files as a fresh interpreter per run', async () => {
    const fresh = database(RICH_CONTEXT, { proposalPath });
    const warm = database(RICH_CONTEXT, { proposalPath });
    for (const [env, executor] of [
      [fresh, new FreshProcessExecutor(fresh)],
      [warm, new WarmWorkerExecutor(warm)],
    ] as const) {
      const db = openDatabase(env.dir);
      try {
        for (const run of [1, 2, 3]) ok(await processRun(request(run, false), { db, executor }));
      } finally {
        db.close();
        await executor.close();
      }
    }
    const rows = storedRows(warm);
    assert.equal(rows.length, 3 * 11, 'every variable has a row, needs_broken its dependency error');
    assert.deepEqual(rows, storedRows(fresh));
    for (const run of [1, 2, 3]) {
      const warmFile = await h5dump(warm.dir.runDataFile(1234, run));
      assert.ok(warmFile.has('.reduced/camera') && warmFile.has('beam_x') && warmFile.has('.errors/broken'));
      assert.deepEqual(warmFile, await h5dump(fresh.dir.runDataFile(1234, run)), `p1234_r${run}.h5`);
    }
  });

  test('a hanging variable stops only its child and what it started; the next run uses the same worker', async () => {
    const marks = path.join(tmp.dir, 'hang-marks');
    mkdirSync(marks);
    const env = database(
      HEADER +
        '@Variable(title="Value")\n' +
        'def value(run, n: "meta#run_number"):\n' +
        '    if n == 2:\n' +
        '        helper = subprocess.Popen(["sleep", "600"])\n' +
        `        with open(${JSON.stringify(path.join(marks, 'pids'))}, "w") as f:\n` +
        '            f.write("%d %d" % (os.getpid(), helper.pid))\n' +
        '        time.sleep(600)\n' +
        '    return n\n',
      { timeoutMs: 6_000 },
    );
    const executor = new WarmWorkerExecutor(env);
    try {
      // The first run starts the worker, so the time limit below only covers a forked child.
      assert.equal(values(await executor.execute(request(1))).get('value')?.v, '1');
      const worker = executor.workerPid;
      assert.ok(worker !== undefined);

      const hung = await executor.execute(request(2));
      assert.equal(hung.ok, false);
      assert.ok((hung.ok ? '' : hung.reason).startsWith(timeLimitReason({ timeoutMs: 6_000 })));
      const [child, helper] = readFileSync(path.join(marks, 'pids'), 'utf8').split(' ').map(Number) as [number, number];
      await waitUntil(() => !processAlive(child) && !processAlive(helper), 'the child and its subprocess to end');

      assert.equal(values(await executor.execute(request(3))).get('value')?.v, '3');
      assert.equal(executor.workerPid, worker, 'the worker survived the time limit');
      assert.ok(processAlive(worker));
    } finally {
      await executor.close();
    }
  });

  test('kill -9 of the worker: the run in flight fails clearly, the next run gets a new worker', async () => {
    const marks = path.join(tmp.dir, 'kill-marks');
    mkdirSync(marks);
    const childPidFile = path.join(marks, 'child');
    const env = database(
      HEADER +
        '@Variable(title="Value")\n' +
        'def value(run, n: "meta#run_number"):\n' +
        '    if n == 2:\n' +
        `        with open(${JSON.stringify(childPidFile)}, "w") as f:\n` +
        '            f.write(str(os.getpid()))\n' +
        '        time.sleep(600)\n' +
        '    return n\n',
    );
    const executor = new WarmWorkerExecutor(env);
    try {
      ok(await executor.execute(request(1)));
      const worker = executor.workerPid;
      assert.ok(worker !== undefined);

      const inFlight = executor.execute(request(2));
      await waitUntil(() => existsSync(childPidFile), 'the run to be under way');
      await waitUntil(() => childrenOf(worker).length >= 2, 'the running child and the spare waiting for the next request');
      const children = childrenOf(worker);
      process.kill(worker, 'SIGKILL');
      const lost = await inFlight;
      assert.equal(lost.ok, false);
      assert.match(
        lost.ok ? '' : lost.reason,
        new RegExp(`^the warm worker \\(pid ${worker}\\) was killed by SIGKILL while this run was in progress; the run was stopped`),
      );
      const child = Number(readFileSync(childPidFile, 'utf8'));
      assert.ok(children.includes(child));
      await waitUntil(() => children.every((pid) => !processAlive(pid)), "the dead worker's children to end");

      assert.equal(values(await executor.execute(request(3))).get('value')?.v, '3');
      assert.notEqual(executor.workerPid, worker, 'a new worker');
    } finally {
      await executor.close();
    }
  });

  test("concurrent runs: each run's output and messages reach only that run", async () => {
    const names = Array.from({ length: 25 }, (_, i) => `v${i}`);
    const env = database(
      HEADER +
        names
          .map(
            (name, i) =>
              `@Variable(title="${name}")\n` +
              `def ${name}(run, n: "meta#run_number"):\n` +
              `    print("out r%d ${name}" % n)\n` +
              `    print("err r%d ${name}" % n, file=sys.stderr)\n` +
              (i === 0 ? '    subprocess.run(["echo", "sub r%d" % n])\n' : '') +
              `    return n * 1000 + ${i}\n`,
          )
          .join('\n'),
    );
    const executor = new WarmWorkerExecutor(env);
    const runs = [1, 2, 3, 4, 5, 6];
    const output = new Map<number, { stream: string; line: string }[]>(runs.map((run) => [run, []]));
    try {
      const outcomes = await Promise.all(
        runs.map((run) => {
          const sink: OutputSink = (stream, line) => output.get(run)?.push({ stream, line });
          return executor.execute(request(run), sink);
        }),
      );
      for (const [index, run] of runs.entries()) {
        const outcome = ok(outcomes[index] as RunOutcome);
        assert.equal(outcome.h5Path, env.dir.runDataFile(1234, run));
        assert.deepEqual(
          outcome.variables.map((v) => [v.name, v.value]),
          names.map((name, i) => [name, { t: 'int', v: String(run * 1000 + i) }]),
        );
        const lines = output.get(run) ?? [];
        const stdout = lines.filter((l) => l.stream === 'stdout').map((l) => l.line);
        const stderr = lines.filter((l) => l.stream === 'stderr').map((l) => l.line);
        assert.deepEqual(stdout, [`out r${run} v0`, `sub r${run}`, ...names.slice(1).map((name) => `out r${run} ${name}`)]);
        const userErrors = stderr.filter((line) => line.startsWith('err '));
        assert.deepEqual(userErrors, names.map((name) => `err r${run} ${name}`));
        assert.ok(stderr.some((line) => line.includes(`run=${run}`)), "the shim's own log lines are the run's too");
        for (const { line } of lines) {
          const mentioned = /\br(\d+)\b/.exec(line);
          if (mentioned) assert.equal(Number(mentioned[1]), run, `line of another run: ${line}`);
        }
      }
    } finally {
      await executor.close();
    }
  });

  test('each run loads context.py afresh and has its own random state', async () => {
    const env = database(HEADER + '@Variable(title="Value")\ndef value(run):\n    return 1\n\n' +
      '@Variable(title="Random")\ndef random(run):\n    return float(np.random.random())\n');
    const executor = new WarmWorkerExecutor(env);
    try {
      const first = values(await executor.execute(request(1)));
      assert.equal(first.get('value')?.v, '1');
      const worker = executor.workerPid;
      writeFileSync(env.dir.contextFile, HEADER + '@Variable(title="Value")\ndef value(run):\n    return 2\n\n' +
        '@Variable(title="Random")\ndef random(run):\n    return float(np.random.random())\n');
      const second = values(await executor.execute(request(2)));
      assert.equal(second.get('value')?.v, '2', 'the edit took effect');
      assert.equal(executor.workerPid, worker);
      assert.notDeepEqual(second.get('random'), first.get('random'), 'numpy reseeded in each child');
    } finally {
      await executor.close();
    }
  });

  test('a context that fails to load, or a run that cannot open, fails that run with its message', async () => {
    const env = database(HEADER + '@Variable(title="Value")\ndef value(run):\n    return 1 +\n');
    const executor = new WarmWorkerExecutor(env);
    try {
      const broken = await executor.execute(request(1));
      assert.equal(broken.ok, false);
      assert.match(broken.ok ? '' : broken.reason, /^context\.py failed to load:\ncontext\.py:7:\d+: /);
      writeFileSync(env.dir.contextFile, HEADER + '@Variable(title="Value")\ndef value(run):\n    return 1\n');
      const missing = await executor.execute(request(1, false));
      assert.equal(missing.ok, false);
      assert.match(missing.ok ? '' : missing.reason, /^Run 1 of proposal 1234 cannot be opened from /);
    } finally {
      await executor.close();
    }
  });

  test('an interpreter that cannot start fails the run, and close() leaves nothing running', async () => {
    const bad = new WarmWorkerExecutor(database(HEADER, { python: path.join(tmp.dir, 'no-such-python') }));
    const outcome = await bad.execute(request(1));
    assert.equal(outcome.ok, false);
    assert.match(outcome.ok ? '' : outcome.reason, /could not start .*no-such-python/);
    await bad.close();

    const executor = new WarmWorkerExecutor(database(HEADER + '@Variable(title="Value")\ndef value(run):\n    return 1\n'));
    ok(await executor.execute(request(1)));
    const worker = executor.workerPid;
    assert.ok(worker !== undefined);
    assert.ok(executor.workerInfo?.preloaded.includes('numpy'), 'the worker preloaded numpy');
    await waitUntil(() => childrenOf(worker).length === 1, 'the spare child to be forked');
    const spare = childrenOf(worker);
    await executor.close();
    assert.equal(processAlive(worker), false);
    await waitUntil(() => spare.every((pid) => !processAlive(pid)), 'the spare to end');
  });
});

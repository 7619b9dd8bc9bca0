import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { execa } from 'execa';
import { CLI_PATH, FIXTURES_DIR, TEST_PYTHON } from '../helpers/paths.js';
import { makeSampleProposal } from '../helpers/python.js';
import { makeTempDir, runCli } from '../helpers/cli.js';
import { eventually, jobRows, makeDatabase, readLog, runLines, values } from '../listener/helpers.js';

const tmp = makeTempDir('damnit-listen-');
after(() => tmp.cleanup());

const SAMPLE_CONTEXT = readFileSync(path.join(FIXTURES_DIR, 'sample', 'context.py'), 'utf8');

/** A backend reading events from a pipe the test writes to, as a user would type them. */
function startListening(db: string, args: string[] = []) {
  return execa(process.execPath, [CLI_PATH, 'listen', '--test', ...args], {
    cwd: db,
    env: { NO_COLOR: '1' },
    stdin: 'pipe',
    reject: false,
    timeout: 300_000,
  });
}

describe('listen --test', () => {
  test('processes the runs typed on standard input and records them; says so in amore.log', async () => {
    const db = await makeDatabase(path.join(tmp.dir, 'basic'), SAMPLE_CONTEXT, { runs: 2 });
    const res = await runCli(['listen', '--test'], { cwd: db, input: '1234 1 raw\n1234 2\n9999 3 raw\nthree words here too\n' });
    assert.equal(res.code, 0, res.stderr);

    const v = values(db);
    assert.equal(v.get('r1.pulses'), 17);
    assert.equal(v.get('r2.pulses'), 24);
    assert.equal(typeof v.get('r1.xgm_intensity'), 'number');
    assert.deepEqual(
      jobRows(db).map((j) => `r${j.run} ${j.kind} ${j.state}`),
      ['r1 raw done', 'r2 proc done', 'r2 raw done'],
    );

    const log = readLog(db);
    assert.match(log, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} INFO  backend started for proposal 1234 /m);
    for (const line of ['arrived (stdin)', 'started', 'done in ']) {
      assert.equal(runLines(log, 1, 'raw').filter((l) => l.includes(line)).length, 1, `r1 raw: ${line}`);
    }
    assert.match(log, / INFO  r1 raw: done in \d+\.\d s: 2 variables$/m);
    assert.match(log, / INFO  r1 raw> INFO:ctxrunner:Computed xgm_intensity in /m, "the user's output, with its run");
    assert.match(log, / INFO  ignored r3 raw of proposal 9999 \(stdin\): this database is for proposal 1234$/m);
    assert.match(log, / WARN  stdin: ignored input line: expected '<proposal> <run> \[raw\|proc\|all\]', got 'three words here too'$/m);
    assert.match(log, / INFO  input ended and its runs are done: stopping$/m);
    // The terminal gets the same lines.
    assert.match(res.stderr, /r2 proc: done in /);
  });

  test('--log-format json writes one JSON object per line', async () => {
    const db = await makeDatabase(path.join(tmp.dir, 'json'), SAMPLE_CONTEXT, { runs: 1 });
    const res = await runCli(['listen', '--test', '--log-format', 'json'], { cwd: db, input: '1234 1 raw\n' });
    assert.equal(res.code, 0, res.stderr);
    const entries = readLog(db)
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.ok(entries.every((e) => typeof e.time === 'string' && typeof e.level === 'string' && typeof e.msg === 'string'));
    assert.ok(entries.some((e) => e.run === 1 && e.data === 'raw' && /^done in /.test(String(e.msg))));
    assert.ok(entries.some((e) => e.run === 1 && e.stream === 'stderr' && /Computed pulses/.test(String(e.msg))));
  });

  test('a burst of 500 events with many repeats: every run processed exactly once per event kind', async () => {
    const root = path.join(tmp.dir, 'burst');
    const calls = path.join(tmp.dir, 'burst-calls.txt');
    const context = `from damnit_ctx import Variable

def count(n, kind):
    with open(${JSON.stringify(calls)}, "a") as f:
        f.write("%d %s\\n" % (n, kind))

@Variable(title="Raw")
def raw_value(run, n: "meta#run_number"):
    count(n, "raw")
    return n

@Variable(title="Proc", data="proc")
def proc_value(run, n: "meta#run_number"):
    count(n, "proc")
    return -n
`;
    const runs = 20;
    const db = await makeDatabase(root, context, { runs, generatorArgs: ['--with-proc'] });
    const lines: string[] = [];
    const expected = new Set<string>();
    for (let i = 0; i < 500; i++) {
      const run = 1 + ((i * 7) % runs);
      const data = (['raw', 'proc', 'all', 'raw', 'raw'] as const)[Math.floor(i / runs) % 5] as string;
      lines.push(`1234 ${run} ${data}`);
      for (const kind of data === 'all' ? ['raw', 'proc'] : [data]) expected.add(`${run} ${kind}`);
    }
    const res = await runCli(['listen', '--test'], { cwd: db, input: `${lines.join('\n')}\n`, timeoutMs: 600_000 });
    assert.equal(res.code, 0, res.stderr);

    const done = readFileSync(calls, 'utf8').trim().split('\n');
    assert.equal(done.length, expected.size, 'each variable ran once per run and kind');
    assert.deepEqual(new Set(done), expected);
    const jobs = jobRows(db);
    assert.equal(jobs.length, expected.size);
    assert.ok(jobs.every((j) => j.state === 'done' && j.attempts === 1), JSON.stringify(jobs.filter((j) => j.state !== 'done')));
    assert.equal(jobs.reduce((n, j) => n + 1 + j.repeats, 0), 500 + lines.filter((l) => l.endsWith('all')).length, 'every event counted');
    const v = values(db);
    for (let run = 1; run <= runs; run++) {
      assert.equal(v.get(`r${run}.raw_value`), run);
      assert.equal(v.get(`r${run}.proc_value`), -run);
    }
  });

  test('a context broken while the backend runs fails runs with the load error; fixing it needs no restart', async () => {
    const good = 'from damnit_ctx import Variable\n\n@Variable(title="Value")\ndef value(run, n: "meta#run_number"):\n    return n * 10\n';
    const db = await makeDatabase(path.join(tmp.dir, 'broken'), good, { runs: 3 });
    const contextFile = path.join(db, 'context.py');
    const backend = startListening(db);
    backend.stdin?.write('1234 1 raw\n');
    await eventually('r1 processed', () => runLines(readLog(db), 1, 'raw').some((l) => l.includes('done in')));

    writeFileSync(contextFile, good.replace('def value(run, n: "meta#run_number"):', 'def value(run, n: "meta#run_number")'));
    backend.stdin?.write('1234 2 raw\n');
    await eventually('r2 failed', () => runLines(readLog(db), 2, 'raw').some((l) => l.includes('FAILED')));
    const log = readLog(db);
    assert.match(log, / ERROR context\.py cannot be loaded; runs fail until it is fixed:\n {4}context\.py:4:\d+: /);
    assert.match(log, / ERROR r2 raw: FAILED after \d+\.\d s: context\.py failed to load:\n {4}context\.py:4:\d+: /);

    writeFileSync(contextFile, good.replace('n * 10', 'n * 100'));
    backend.stdin?.write('1234 3 raw\n1234 2 raw\n');
    backend.stdin?.end();
    const result = await backend;
    assert.equal(result.exitCode, 0, String(result.stderr));
    const v = values(db);
    assert.equal(v.get('r1.value'), 10, 'earlier result intact');
    assert.equal(v.get('r2.value'), 200);
    assert.equal(v.get('r3.value'), 300);
    assert.match(readLog(db), / INFO  r2 raw: arrived again \(stdin\): queued for reprocessing$/m);
  });

  test('one backend per database; mistakes in the options are usage errors', async () => {
    const db = await makeDatabase(path.join(tmp.dir, 'single'), 'from damnit_ctx import Variable\n');
    const first = startListening(db);
    await eventually('the first backend started', () => readLog(db).includes('backend started'));
    const second = await runCli(['listen', '--test'], { cwd: db });
    assert.equal(second.code, 1);
    assert.match(second.stderr, /^Error: another backend \(pid \d+ on [^)]+\) is listening for this database; stop it first/m);
    first.stdin?.end();
    assert.equal((await first).exitCode, 0);

    for (const args of [['--settle', 'soon'], ['--test', '--daemonize'], ['--source', 'carrier-pigeon'], ['--log-format', 'xml']]) {
      const res = await runCli(['listen', ...args], { cwd: db });
      assert.equal(res.code, 2, `${args.join(' ')}: ${res.stderr}`);
    }
    const nowhere = await runCli(['listen', '--test'], { cwd: tmp.dir });
    assert.equal(nowhere.code, 1);
    assert.match(nowhere.stderr, /^Error: no runs\.sqlite in /m);
  });

  test('one backend while it lives: a stopped backend keeps its claim, a killed one frees it at once', async () => {
    const db = await makeDatabase(path.join(tmp.dir, 'claim'), 'from damnit_ctx import Variable\n');
    const first = startListening(db);
    await eventually('the first backend started', () => readLog(db).includes('backend started'));
    const pid = first.pid as number;
    process.kill(pid, 'SIGSTOP');
    try {
      // As if it had been stopped (or swapping) for an hour: no heartbeat would look fresh.
      const conn = new Database(path.join(db, 'runs.sqlite'));
      const claim = conn.prepare("SELECT value FROM damnit_ts_state WHERE key = 'listener'").get() as { value: string };
      const stale = { ...(JSON.parse(claim.value) as object), heartbeatAt: Date.now() / 1000 - 3600 };
      conn.prepare("UPDATE damnit_ts_state SET value = ? WHERE key = 'listener'").run(JSON.stringify(stale));
      conn.close();

      const second = await runCli(['listen', '--test'], { cwd: db, timeoutMs: 60_000 });
      assert.equal(second.code, 1, second.stderr);
      assert.match(
        second.stderr,
        new RegExp(`^Error: another backend \\(pid ${pid} on ${os.hostname()}, since \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d UTC\\) is listening for this database; stop it first`, 'm'),
      );
      const third = await runCli(['listen', '--test'], { cwd: db, timeoutMs: 60_000 });
      assert.equal(third.code, 1, 'the refused backend took nothing away from the first one');
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    process.kill(pid, 'SIGKILL');
    await first;
    const next = await runCli(['listen', '--test'], { cwd: db, input: '', timeoutMs: 60_000 });
    assert.equal(next.code, 0, next.stderr);
  });

  test('a database outside <proposal>/usr/Shared/amore: one message naming proposal_path, then it works once set', async () => {
    const root = path.join(tmp.dir, 'elsewhere');
    await makeSampleProposal(path.join(root, 'proposal'), ['--runs', '1', '--trains', '3']);
    const db = path.join(root, 'db');
    mkdirSync(db);
    writeFileSync(path.join(db, 'context.py'), 'from damnit_ctx import Variable\n\n@Variable(title="N")\ndef n(run):\n    return len(run.train_ids)\n');
    const env = { XFEL_DATA_ROOT: path.join(root, 'no-facility-here') };
    for (const args of [['proposal', '1234'], ['db-config', 'context_python', TEST_PYTHON]]) {
      assert.equal((await runCli(args, { cwd: db })).code, 0);
    }
    const res = await runCli(['listen'], { cwd: db, env, timeoutMs: 30_000 });
    assert.equal(res.code, 1, res.stderr);
    assert.equal(
      res.stderr,
      `Error: cannot tell where this proposal's data is: ${db} is not <proposal>/usr/Shared/amore, and there is no ` +
        `p001234 under ${env.XFEL_DATA_ROOT}/*/*/; set it with 'amore-proto db-config proposal_path /path/to/proposal'\n`,
    );
    assert.equal((await runCli(['db-config', 'proposal_path', path.join(root, 'proposal')], { cwd: db })).code, 0);
    const listened = await runCli(['listen', '--test'], { cwd: db, env, input: '1234 1 raw\n' });
    assert.equal(listened.code, 0, listened.stderr);
    assert.equal(values(db).get('r1.n'), 3);
  });

  test('a 1 MB line of bad input costs one short line in amore.log', async () => {
    const db = await makeDatabase(path.join(tmp.dir, 'long-line'), 'from damnit_ctx import Variable\n');
    const junk = `${'x'.repeat(1_000_000)} 1 raw`;
    const res = await runCli(['listen', '--test'], { cwd: db, input: `${junk}\n` });
    assert.equal(res.code, 0, res.stderr);
    const line = readLog(db).split('\n').find((l) => l.includes('ignored input line'));
    assert.ok(line, readLog(db).slice(0, 2000));
    assert.match(line, /: proposal must be an integer, got 'x{200}\.\.\. \(999800 more characters\)'$/);
    assert.ok(statSync(path.join(db, 'amore.log')).size < 10_000);
  });
});

/**
 * reprocess when what is around it fails: a database another process keeps locked, a damaged
 * database, Ctrl-C, a proposal whose data is elsewhere or nowhere, a context.py that is a
 * directory. Never a stack trace; the summary whenever runs were started.
 */
import assert from 'node:assert/strict';
import { closeSync, existsSync, mkdirSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { execa, type ResultPromise } from 'execa';
import { makeTempDir, runCli } from '../helpers/cli.js';
import { CLI_PATH, TEST_PYTHON } from '../helpers/paths.js';
import { makeSampleProposal } from '../helpers/python.js';
import { eventually, makeDatabase, values } from '../listener/helpers.js';

const tmp = makeTempDir('damnit-reprocess-failures-');
after(() => tmp.cleanup());

const HEADER = 'import os, time\nfrom damnit_ctx import Variable\n\n';

/** reprocess started in the background, as a user would leave it running. */
function startReprocess(db: string, args: string[]): ResultPromise<{ cwd: string; reject: false; all: true; forceKillAfterDelay: false }> {
  return execa(process.execPath, [CLI_PATH, 'reprocess', ...args], { cwd: db, reject: false, all: true, env: { NO_COLOR: '1' }, forceKillAfterDelay: false });
}

/** Another process holding runs.sqlite locked (BEGIN EXCLUSIVE: no reads, no writes) until released. */
async function lockDatabase(db: string): Promise<{ release: () => Promise<void> }> {
  const locker = execa(TEST_PYTHON, ['-c', String.raw`
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()
`, path.join(db, 'runs.sqlite')], { stdin: 'pipe', reject: false });
  let out = '';
  locker.stdout?.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  await eventually('the database to be locked', () => out.includes('locked'));
  return {
    release: async () => {
      locker.stdin?.end();
      await locker;
    },
  };
}

/** Run 1 leaves a mark and waits for the go file: the test acts while it computes. */
function waitingContext(mark: string, go: string): string {
  return `${HEADER}@Variable(title="Value")
def value(run, n: "meta#run_number"):
    if n == 1:
        open(${JSON.stringify(mark)}, "w").close()
        while not os.path.exists(${JSON.stringify(go)}):
            time.sleep(0.05)
    return n * 10
`;
}

function assertNoStackTrace(text: string): void {
  assert.doesNotMatch(text, /^\s+at .*\(.*:\d+:\d+\)$/m, text);
  assert.doesNotMatch(text, /SqliteError|Traceback/, text);
}

describe('reprocess with a database another process keeps locked', () => {
  test('waits with a message, gives up after db_busy_timeout with one line, goes on with the other runs, prints its summary; the next reprocess records them', async () => {
    const mark = path.join(tmp.dir, 'locked-mark');
    const go = path.join(tmp.dir, 'locked-go');
    const db = await makeDatabase(path.join(tmp.dir, 'locked'), waitingContext(mark, go), { runs: 3 });
    for (const args of [['--num', 'db_busy_timeout', '4'], ['--num', 'concurrent_jobs', '1']]) {
      assert.equal((await runCli(['db-config', ...args], { cwd: db })).code, 0);
    }
    const running = startReprocess(db, ['1', '2', '3']);
    await eventually('run 1 to be computing', () => existsSync(mark));
    const lock = await lockDatabase(db);
    let res;
    try {
      writeFileSync(go, '');
      res = await running;
    } finally {
      await lock.release();
    }
    assert.equal(res.exitCode, 1, res.all);
    assertNoStackTrace(res.all);
    const dbFile = path.join(db, 'runs.sqlite');
    assert.match(res.stderr, new RegExp(`^waiting for ${dbFile}: another process holds it locked \\(\\d+ s so far; giving up after 4 s\\)$`, 'm'));
    assert.match(res.stderr, /^r1 \(p1234\): FAILED in [\d.]+ s: computed, not recorded yet: .*runs\.sqlite stayed locked by another process for over 4 s; gave up/m);
    assert.match(res.stderr, /^3 runs computed but not recorded in runs\.sqlite, which stayed locked \(their values are in extracted_data\/\): run 'amore-proto reprocess 1 2 3' once it is free$/m);
    assert.match(res.stdout, /^Processed 3 runs: 0 ok, 3 failed$/m);
    for (const run of [1, 2, 3]) assert.ok(existsSync(path.join(db, 'extracted_data', `p1234_r${run}.h5`)), `r${run} computed`);
    assert.equal(values(db).size, 0);

    const again = await runCli(['reprocess', '1', '2', '3'], { cwd: db });
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual([1, 2, 3].map((run) => values(db).get(`r${run}.value`)), [10, 20, 30]);
  });

  test('a lock released while it waits: every run recorded, exit 0', async () => {
    const mark = path.join(tmp.dir, 'brief-mark');
    const go = path.join(tmp.dir, 'brief-go');
    const db = await makeDatabase(path.join(tmp.dir, 'brief'), waitingContext(mark, go), { runs: 2 });
    const running = startReprocess(db, ['1', '2']);
    await eventually('run 1 to be computing', () => existsSync(mark));
    const lock = await lockDatabase(db);
    let stderr = '';
    running.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    writeFileSync(go, '');
    await eventually('reprocess to say it waits', () => stderr.includes('waiting for'));
    await lock.release();
    const res = await running;
    assert.equal(res.exitCode, 0, res.all);
    assert.match(res.stdout, /^Processed 2 runs: 2 ok, 0 failed$/m);
    assert.equal(values(db).get('r1.value'), 10);
    assert.equal(values(db).get('r2.value'), 20);
  });
});

describe('reprocess with a damaged database', () => {
  test('one line naming the file and sqlite3 .recover; no stack trace', async () => {
    const db = await makeDatabase(path.join(tmp.dir, 'damaged'), `${HEADER}@Variable(title="Value")\ndef value(run):\n    return 1\n`, { runs: 1 });
    assert.equal((await runCli(['reprocess', '1'], { cwd: db })).code, 0);
    const file = path.join(db, 'runs.sqlite');
    // Overwrite the first page of run_variables with garbage, as a failing disk would.
    const conn = new Database(file, { readonly: true });
    const page = Number(conn.pragma('page_size', { simple: true }));
    const { rootpage } = conn.prepare("SELECT rootpage FROM sqlite_master WHERE name = 'run_variables'").get() as { rootpage: number };
    conn.close();
    const fd = openSync(file, 'r+');
    writeSync(fd, Buffer.alloc(page, 0xa5), 0, page, (rootpage - 1) * page);
    closeSync(fd);

    const damaged = `Error: ${file} is damaged (SQLite: database disk image is malformed): save what it still holds with ` +
      `'sqlite3 ${file} .recover | sqlite3 ${file}.recovered', check the copy, then put it in its place\n`;
    const reprocess = await runCli(['reprocess', '1'], { cwd: db });
    assert.equal(reprocess.code, 1, reprocess.stdout + reprocess.stderr);
    assertNoStackTrace(reprocess.stderr);
    assert.match(reprocess.stderr, /^r1 \(p1234\): FAILED in [\d.]+ s: not recorded: runs\.sqlite is damaged\n/m);
    assert.ok(reprocess.stderr.endsWith(damaged), reprocess.stderr);
    assert.match(reprocess.stdout, /^Processed 1 run: 0 ok, 1 failed$/m);
    const table = await runCli(['table'], { cwd: db });
    assert.equal(table.code, 1);
    assert.equal(table.stderr, damaged);
  });
});

describe('reprocess interrupted', () => {
  test('Ctrl-C stops the runs, prints the summary and exits 130', async () => {
    const mark = path.join(tmp.dir, 'ctrl-c-mark');
    const db = await makeDatabase(path.join(tmp.dir, 'ctrl-c'), waitingContext(mark, path.join(tmp.dir, 'never')), { runs: 3 });
    assert.equal((await runCli(['db-config', '--num', 'concurrent_jobs', '1'], { cwd: db })).code, 0);
    const running = startReprocess(db, ['1', '2', '3']);
    await eventually('run 1 to be computing', () => existsSync(mark));
    running.kill('SIGINT');
    const res = await running;
    assert.equal(res.exitCode, 130, res.all);
    assertNoStackTrace(res.all);
    assert.match(res.stdout, /^Processed 3 runs: 0 ok, 1 failed; interrupted by SIGINT, 2 not processed$/m);
    assert.match(res.stderr, /^r1 \(p1234\): FAILED in [\d.]+ s: interrupted \(SIGINT\)$/m);
  });
});

describe('reprocess --proposal', () => {
  const dataRoot = path.join(tmp.dir, 'exp');

  test("processes that proposal's own data, found where the facility keeps proposals", async () => {
    const db = await makeDatabase(path.join(tmp.dir, 'own'), `${HEADER}@Variable(title="Trains")\ndef trains(run):\n    return len(run.train_ids)\n`, { runs: 1 });
    const other = path.join(dataRoot, 'MID', '202601', 'p005555');
    mkdirSync(other, { recursive: true });
    await makeSampleProposal(other, ['--runs', '1', '--trains', '7', '--proposal', '5555']);
    const env = { XFEL_DATA_ROOT: dataRoot };

    const res = await runCli(['reprocess', '1', '--proposal', '5555'], { cwd: db, env });
    assert.equal(res.code, 0, res.stderr);
    assert.equal((await runCli(['reprocess', '1'], { cwd: db, env })).code, 0);
    const conn = new Database(path.join(db, 'runs.sqlite'), { readonly: true });
    const trains = conn.prepare("SELECT proposal, value FROM run_variables WHERE name = 'trains' ORDER BY proposal").all();
    conn.close();
    assert.deepEqual(trains, [{ proposal: 1234, value: 5 }, { proposal: 5555, value: 7 }]);
  });

  test('a proposal that does not exist: a clear error, nothing recorded', async () => {
    const db = await makeDatabase(path.join(tmp.dir, 'nowhere'), `${HEADER}@Variable(title="A")\ndef a(run):\n    return 1\n`, { runs: 1 });
    mkdirSync(dataRoot, { recursive: true });
    const res = await runCli(['reprocess', '1', '--proposal', '7777'], { cwd: db, env: { XFEL_DATA_ROOT: dataRoot } });
    assert.equal(res.code, 1);
    assert.equal(
      res.stderr,
      `Error: cannot find the data of proposal 7777: there is no p007777 under ${dataRoot}/*/*/ (set XFEL_DATA_ROOT if proposals are kept elsewhere)\n`,
    );
    assert.equal(existsSync(path.join(db, 'extracted_data', 'p7777_r1.h5')), false);
  });
});

describe('reprocess with a context.py that is a directory', () => {
  test('one clear message, no Python traceback', async () => {
    const db = await makeDatabase(path.join(tmp.dir, 'dir-context'), '', { runs: 1 });
    const context = path.join(db, 'context.py');
    // makeDatabase wrote a file; a directory of that name takes its place.
    rmSync(context);
    mkdirSync(context);
    const res = await runCli(['reprocess', '1'], { cwd: db });
    assert.equal(res.code, 1);
    assertNoStackTrace(res.stderr);
    assert.equal(
      res.stderr,
      `${context} is not a file (a directory?): the context must be a Python file of that name\n` +
        'Error: context.py cannot be loaded; no run was processed\n',
    );
  });
});

// `amore-proto context install NEW_FILE` through the built CLI: errors (from the check or from the
// real interpreter) change nothing; a good file replaces context.py, keeps the old one, and
// updates the variables table.
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { DatabaseDir } from '../../src/database-dir.js';
import { openDatabase } from '../../src/db/database.js';
import { makeTempDir, runCli } from '../helpers/cli.js';
import { FIXTURES_DIR, TEST_PYTHON } from '../helpers/paths.js';
import { ensurePyflakesWheel } from '../validate/pyflakes-wheel.js';

const tmp = makeTempDir('damnit-context-install-');
after(() => tmp.cleanup());
before(() => ensurePyflakesWheel());

const corpusFile = (group: string, name: string): string => path.join(FIXTURES_DIR, 'contexts', group, name);
const OLD_CONTEXT = 'from damnit_ctx import Variable\n\n@Variable(title="Old")\ndef old(run):\n    return 1\n';

let counter = 0;
/** A database directory (context_python = Debian's Python) whose live context defines `old`. */
function database(withContext = true): string {
  counter += 1;
  const dir = path.join(tmp.dir, `db${counter}`);
  mkdirSync(dir);
  const db = openDatabase(new DatabaseDir(dir), { create: true });
  try {
    db.metameta.set('proposal', 1234);
    db.metameta.set('context_python', TEST_PYTHON);
    if (withContext) {
      writeFileSync(path.join(dir, 'context.py'), OLD_CONTEXT);
      db.upsertVariables([
        {
          name: 'old', title: 'Old', description: null, summary: null, data: 'raw', cluster: false, tags: [],
          transient: false, units: null, parameters: [], dependencies: [], line: 4,
        },
      ]);
    }
  } finally {
    db.close();
  }
  return dir;
}

function variableNames(dir: string): string[] {
  const conn = new Database(path.join(dir, 'runs.sqlite'), { readonly: true });
  try {
    return (conn.prepare('SELECT name FROM variables ORDER BY name').all() as { name: string }[]).map((r) => r.name);
  } finally {
    conn.close();
  }
}

/** The directory's files, less SQLite's own (-wal, -shm): no staged copy may be left behind. */
function listing(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => !f.startsWith('runs.sqlite-'))
    .sort();
}

function assertUnchanged(dir: string): void {
  assert.equal(readFileSync(path.join(dir, 'context.py'), 'utf8'), OLD_CONTEXT);
  assert.deepEqual(listing(dir), ['context.py', 'new.py', 'runs.sqlite']);
  assert.deepEqual(variableNames(dir), ['old']);
}

describe('refused files change nothing', () => {
  test('a file with errors: printed, exit 1', async () => {
    const dir = database();
    copyFileSync(corpusFile('errors', 'cycle.py'), path.join(dir, 'new.py'));
    const result = await runCli(['context', 'install', 'new.py'], { cwd: dir });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^new\.py:6:1: error: These Variables have cyclical dependencies/m);
    assert.match(result.stderr, /^Error: new\.py has 1 error; context\.py was not changed$/m);
    assertUnchanged(dir);
  });

  test('a file only the real interpreter rejects (an import error): exit 1', async () => {
    const dir = database();
    copyFileSync(corpusFile('beyond-static', 'import-error.py'), path.join(dir, 'new.py'));
    const result = await runCli(['context', 'install', 'new.py'], { cwd: dir });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^new\.py:4:1: error: ModuleNotFoundError: No module named 'package_that_is_not_installed'$/m);
    assert.match(result.stderr, /^Error: new\.py does not load with the context_python; context\.py was not changed$/m);
    assertUnchanged(dir);
  });
});

describe('installing', () => {
  test('warnings do not block: context.py replaced, the old one kept, variables read', async () => {
    const dir = database();
    chmodSync(path.join(dir, 'context.py'), 0o640);
    const newFile = corpusFile('valid', 'pyflakes-warnings.py');
    copyFileSync(newFile, path.join(dir, 'new.py'));
    const result = await runCli(['context', 'install', 'new.py'], { cwd: dir });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /^new\.py:4:1: warning: 'os' imported but unused$/m);
    assert.deepEqual(readFileSync(path.join(dir, 'context.py')), readFileSync(newFile));
    assert.equal(statSync(path.join(dir, 'context.py')).mode & 0o777, 0o640);

    const history = readdirSync(path.join(dir, 'context_history'));
    assert.equal(history.length, 1);
    assert.match(history[0] ?? '', /^context-\d{8}T\d{6}Z\.py$/);
    assert.equal(readFileSync(path.join(dir, 'context_history', history[0] ?? ''), 'utf8'), OLD_CONTEXT);
    assert.match(result.stdout, new RegExp(`^Installed new\\.py as context\\.py; the previous version is context_history/${history[0]}$`, 'm'));
    assert.match(result.stdout, /^Read 2 variables from context\.py with \/usr\/bin\/python3/m);
    // Rows of variables that left the context stay, as with read-context.
    assert.deepEqual(variableNames(dir), ['answer', 'answer2', 'old']);
    assert.deepEqual(listing(dir), ['context.py', 'context_history', 'new.py', 'runs.sqlite']);
  });

  // Issue 9: what fails only its variable at run time does not block, as for read-context.
  test('an unknown annotation is a warning: installed, every variable read', async () => {
    const dir = database();
    copyFileSync(corpusFile('valid', 'unknown-annotation.py'), path.join(dir, 'new.py'));
    const result = await runCli(['context', 'install', 'new.py'], { cwd: dir });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /^new\.py:6:1: warning: Unknown path 'meta#run_nr' for variable 'Run'$/m);
    assert.equal(result.stderr.match(/Unknown path/g)?.length, 1, 'shown once, not again by the loader');
    assert.deepEqual(variableNames(dir), ['old', 'run_no']);
  });

  test('a second install keeps both earlier versions', async () => {
    const dir = database();
    copyFileSync(corpusFile('valid', 'seed-example.py'), path.join(dir, 'one.py'));
    copyFileSync(corpusFile('valid', 'unicode.py'), path.join(dir, 'two.py'));
    assert.equal((await runCli(['context', 'install', 'one.py'], { cwd: dir })).code, 0);
    assert.equal((await runCli(['context', 'install', 'two.py'], { cwd: dir })).code, 0);
    const kept = readdirSync(path.join(dir, 'context_history')).sort().map((f) => readFileSync(path.join(dir, 'context_history', f), 'utf8'));
    assert.deepEqual(kept, [OLD_CONTEXT, readFileSync(corpusFile('valid', 'seed-example.py'), 'utf8')]);
    assert.deepEqual(variableNames(dir), ['delta_t', 'old', 'pulses', 'xgm_intensity', 'énergie']);
  });

  test('into a database with no context.py yet: no backup', async () => {
    const dir = database(false);
    copyFileSync(corpusFile('valid', 'seed-example.py'), path.join(dir, 'new.py'));
    const result = await runCli(['context', 'install', 'new.py'], { cwd: dir });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^Installed new\.py as context\.py$/m);
    assert.equal(existsSync(path.join(dir, 'context_history')), false);
    assert.deepEqual(variableNames(dir), ['pulses', 'xgm_intensity']);
  });
});

describe('mistakes', () => {
  test('outside a database directory: exit 1; no file or a missing one: exit 2', async () => {
    const outside = await runCli(['context', 'install', corpusFile('valid', 'seed-example.py')], { cwd: tmp.dir });
    assert.equal(outside.code, 1);
    assert.match(outside.stderr, /^Error: no runs\.sqlite in /m);
    const dir = database();
    assert.equal((await runCli(['context', 'install'], { cwd: dir })).code, 2);
    assert.equal((await runCli(['context', 'install', 'missing.py'], { cwd: dir })).code, 2);
    assert.equal(readFileSync(path.join(dir, 'context.py'), 'utf8'), OLD_CONTEXT);
  });
});

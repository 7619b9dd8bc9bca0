// `amore-proto read-context` through the built CLI, with Debian's Python, reading the SQLite
// file back after each run.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { DatabaseDir } from '../../src/database-dir.js';
import { openDatabase } from '../../src/db/database.js';
import { makeTempDir, runCli } from '../helpers/cli.js';
import { TEST_PYTHON } from '../helpers/paths.js';

const tmp = makeTempDir('damnit-read-context-');
after(() => tmp.cleanup());

let counter = 0;

/** A fresh database directory for proposal 1234, with `settings` in metameta and maybe a context. */
function newDatabase(context?: string | Buffer, settings: Record<string, string | number> = {}): string {
  counter += 1;
  const dir = path.join(tmp.dir, `db${counter}`);
  mkdirSync(dir, { recursive: true });
  const db = openDatabase(new DatabaseDir(dir), { create: true });
  try {
    db.metameta.set('proposal', 1234);
    db.metameta.set('context_python', TEST_PYTHON);
    for (const [key, value] of Object.entries(settings)) db.metameta.set(key, value);
  } finally {
    db.close();
  }
  if (context !== undefined) writeFileSync(path.join(dir, 'context.py'), context);
  return dir;
}

interface Tables {
  variables: { name: string; type: string | null; title: string; description: string | null; attributes: string | null }[];
  tags: [string, string][];
}

function readTables(dir: string): Tables {
  const conn = new Database(path.join(dir, 'runs.sqlite'), { readonly: true });
  try {
    return {
      variables: conn
        .prepare('SELECT name, type, title, description, attributes FROM variables ORDER BY name')
        .all() as Tables['variables'],
      tags: (
        conn
          .prepare(
            'SELECT variable_tags.variable_name AS v, tags.name AS t FROM variable_tags ' +
              'JOIN tags ON tags.id = variable_tags.tag_id ORDER BY v, t',
          )
          .all() as { v: string; t: string }[]
      ).map((row) => [row.v, row.t]),
    };
  } finally {
    conn.close();
  }
}

const HEADER = 'from damnit_ctx import Variable\n';

const GOOD_CONTEXT =
  HEADER +
  '\n@Variable(title="XGM intensity [µJ]", summary="mean", tags=["xgm", "beam"])\n' +
  'def xgm(run):\n    """\n    Mean XGM intensity per-train.\n    """\n    return 1\n' +
  '\n@Variable(title="Énergie ✓", description="Photon energy", tags="beam")\n' +
  'def energy(run, x: "var#xgm"):\n    return 2\n' +
  '\n@Variable(transient=True)\n' +
  'def scratch(run):\n    return 3\n';

describe('read-context', () => {
  test('records every non-transient variable with its title, description and tags', async () => {
    const dir = newDatabase(GOOD_CONTEXT);
    const result = await runCli(['read-context'], { cwd: dir });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(
      result.stdout,
      `Read 3 variables from context.py (1 transient, not stored) with ${TEST_PYTHON} (Python ${result.stdout.match(/Python (3\.\d+\.\d+)/)?.[1]})\n`,
    );
    assert.deepEqual(readTables(dir), {
      variables: [
        { name: 'energy', type: null, title: 'Énergie ✓', description: 'Photon energy', attributes: null },
        {
          name: 'xgm',
          type: null,
          title: 'XGM intensity [µJ]',
          description: 'Mean XGM intensity per-train.',
          attributes: null,
        },
      ],
      tags: [
        ['energy', 'beam'],
        ['xgm', 'beam'],
        ['xgm', 'xgm'],
      ],
    });
  });

  test('reading again after an edit updates titles and tags and keeps variables that left the context', async () => {
    const dir = newDatabase(GOOD_CONTEXT);
    assert.equal((await runCli(['read-context'], { cwd: dir })).code, 0);
    writeFileSync(
      path.join(dir, 'context.py'),
      HEADER + '@Variable(title="XGM (new title)", tags="diagnostics")\ndef xgm(run):\n    return 1\n',
    );
    const result = await runCli(['read-context'], { cwd: dir });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^Read 1 variable from context\.py with /);
    const tables = readTables(dir);
    assert.deepEqual(
      tables.variables.map((v) => [v.name, v.title]),
      [
        ['energy', 'Énergie ✓'],
        ['xgm', 'XGM (new title)'],
      ],
    );
    assert.deepEqual(tables.tags, [
      ['energy', 'beam'],
      ['xgm', 'diagnostics'],
    ]);
  });

  test('an empty context.py is valid and has no variables', async () => {
    const dir = newDatabase('');
    const result = await runCli(['read-context'], { cwd: dir });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^Read 0 variables from context\.py/);
    assert.deepEqual(readTables(dir).variables, []);
  });

  test('what the context prints at import goes to stderr and corrupts nothing', async () => {
    const dir = newDatabase(
      'import sys\nprint("{\\"protocol\\": 1, \\"kind\\": \\"fatal\\"}")\nprint("note from the context", file=sys.stderr)\n' +
        GOOD_CONTEXT,
    );
    const result = await runCli(['read-context'], { cwd: dir });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^Read 3 variables/);
    assert.match(result.stderr, /"kind": "fatal"/);
    assert.match(result.stderr, /note from the context/);
    assert.equal(readTables(dir).variables.length, 2);
  });

  test('no context.py: a clear error', async () => {
    const dir = newDatabase();
    const result = await runCli(['read-context'], { cwd: dir });
    assert.equal(result.code, 1);
    assert.equal(result.stderr, `Error: no context.py in ${dir}: write one there, then run read-context again\n`);
  });

  test('outside a database directory: a clear error', async () => {
    const dir = path.join(tmp.dir, 'not-a-database');
    mkdirSync(dir, { recursive: true });
    const result = await runCli(['read-context'], { cwd: dir });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^Error: no runs\.sqlite in /);
  });
});

describe('read-context with a context that does not load', () => {
  /** Reads a good context first, then breaks it: the database must keep the good state. */
  async function failingRead(
    broken: string | Buffer,
    args: string[] = ['read-context'],
    settings: Record<string, string | number> = {},
  ) {
    const dir = newDatabase(GOOD_CONTEXT, settings);
    assert.equal((await runCli(['read-context'], { cwd: dir })).code, 0);
    const before = readTables(dir);
    writeFileSync(path.join(dir, 'context.py'), broken);
    const result = await runCli(args, { cwd: dir });
    assert.equal(result.code, 1, result.stderr);
    assert.equal(result.stdout, '');
    assert.deepEqual(readTables(dir), before, 'the database is unchanged');
    return result;
  }

  test('syntax error: file, line and column', async () => {
    const result = await failingRead('x = 1\ny = (1,\n');
    assert.equal(
      result.stderr,
      "context.py:2:5: '(' was never closed\nError: context.py has a problem; the database was not changed\n",
    );
  });

  test('import error: the missing module and the line; the traceback only with --debug', async () => {
    const source = 'import os\nimport not_installed_anywhere\n';
    const plain = await failingRead(source);
    assert.equal(
      plain.stderr,
      "context.py:2:1: ModuleNotFoundError: No module named 'not_installed_anywhere'\n" +
        'Error: context.py has a problem; the database was not changed\n',
    );
    const debug = await failingRead(source, ['--debug', 'read-context']);
    assert.match(debug.stderr, /Traceback \(most recent call last\):\n {2}File ".*context\.py", line 2, in <module>/);
    assert.match(debug.stderr, /\nError: context\.py has a problem; the database was not changed\n$/);
  });

  test('non-UTF-8 source: where the bad byte is', async () => {
    const result = await failingRead(Buffer.from('# caf\xe9\n', 'latin1'));
    assert.match(result.stderr, /^context\.py:1:6: invalid UTF-8 byte 0xe9: save the file as UTF-8\n/);
  });

  test('a hang at import ends at context_load_timeout, with how to raise it', async () => {
    const result = await failingRead('import time\ntime.sleep(600)\n', ['read-context'], {
      context_load_timeout: 1,
    });
    assert.equal(
      result.stderr,
      "context.py took longer than 1 s to load (raise the limit with 'amore-proto db-config context_load_timeout SECONDS')\n" +
        'Error: context.py has a problem; the database was not changed\n',
    );
  });

  // Issue 9: as the reference, an unknown annotation fails only its variable, at run time.
  test('a problem that fails only its variable at run time is a warning: every variable is recorded', async () => {
    const dir = newDatabase(
      HEADER + '@Variable\ndef a(run, x: "meta#colour"):\n    pass\n@Variable(title="B")\ndef b(run):\n    pass\n',
    );
    const result = await runCli(['read-context'], { cwd: dir });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, "warning: context.py:3:1: Unknown path 'meta#colour' for variable 'a'\n");
    assert.deepEqual(
      readTables(dir).variables.map((v) => [v.name, v.title]),
      [
        ['a', 'a'],
        ['b', 'B'],
      ],
    );
  });

  // Contract section 5, through the CLI: the reference's wording at the variable's def line.
  const loadErrors: [string, string, string][] = [
    [
      'duplicate titles',
      '@Variable(title="T")\ndef a(run): pass\n@Variable(title="T")\ndef b(run): pass\n',
      'context.py:5:1: These Variables have duplicate titles between them: a, b',
    ],
    [
      'cycle',
      '@Variable\ndef a(run, x: "var#b"): pass\n@Variable\ndef b(run, x: "var#a"): pass\n',
      "context.py:3:1: These Variables have cyclical dependencies, which is not allowed: ['a', 'b', 'a']",
    ],
    ['missing var#', '@Variable\ndef foo(run, v: "var#x"): pass\n', "context.py:3:1: Missing dependency: 'x' for 'foo'"],
    [
      'raw depending on proc',
      '@Variable(data="proc")\ndef p(run): pass\n@Variable(data="raw")\ndef r(run, x: "var#p"): pass\n',
      "context.py:5:1: Variable r is triggered by migration of raw data (data='raw'), but depends on these " +
        "Variables that require proc data: p\nRemove data='raw' for r or change it to data='proc'",
    ],
    ['bad data', '@Variable(data="both")\ndef a(run): pass\n', "context.py:3:1: data='both' for variable a (can be 'raw'/'proc')"],
    [
      'bad mymdc field',
      '@Variable\ndef a(run, s: "mymdc#samples"): pass\n',
      "context.py:3:1: Argument 's' of variable 'a' has an invalid MyMdC dependency: 'samples'",
    ],
    ['empty units', '@Variable(units="")\ndef a(run): pass\n', "context.py:3:1: units='' for variable a (must be a non-empty string)"],
    [
      'bad tags',
      '@Variable(tags=[1])\ndef a(run): pass\n',
      'context.py:3:1: tags=[1] for variable a (must be a non-empty string or an iterable of strings)',
    ],
  ];
  for (const [name, source, line] of loadErrors) {
    test(`load error: ${name}`, async () => {
      const result = await failingRead(HEADER + source);
      assert.equal(result.stderr, `${line}\nError: context.py has a problem; the database was not changed\n`);
    });
  }
});

describe('read-context with a wrong interpreter', () => {
  function fake(name: string, body: string, mode = 0o755): string {
    const file = path.join(tmp.dir, name);
    rmSync(file, { force: true });
    writeFileSync(file, body);
    chmodSync(file, mode);
    return file;
  }

  async function readWith(python: string) {
    const dir = newDatabase(GOOD_CONTEXT, { context_python: python });
    const result = await runCli(['read-context'], { cwd: dir });
    assert.equal(result.code, 1);
    assert.equal(result.stdout, '');
    assert.deepEqual(readTables(dir).variables, []);
    return result.stderr;
  }

  const howTo = "change this database's interpreter with 'amore-proto db-config context_python /path/to/python'";

  test('a path that does not exist', async () => {
    const python = path.join(tmp.dir, 'envs', 'gone', 'bin', 'python');
    assert.equal(await readWith(python), `Error: the context Python ${python} does not exist; ${howTo}\n`);
  });

  test('a file that is not executable', async () => {
    const python = fake('python-no-x', '#!/bin/sh\n', 0o644);
    assert.equal(
      await readWith(python),
      `Error: the context Python ${python} is not executable (no permission to run it); ${howTo}\n`,
    );
  });

  test('a program that is not Python', async () => {
    const python = fake('python-impostor', '#!/bin/sh\necho "I am not Python"\n');
    assert.equal(
      await readWith(python),
      `Error: the context Python ${python} is not a Python interpreter (it did not run a Python snippet); ${howTo}\n`,
    );
  });

  test('a Python older than 3.9', async () => {
    const python = fake(
      'python3.8-fake',
      '#!/bin/sh\necho \'{"version": "3.8.10", "version_info": [3, 8, 10], "executable": "/usr/bin/python3.8", "prefix": "/usr"}\'\n',
    );
    assert.equal(
      await readWith(python),
      `Error: the context Python ${python} is Python 3.8.10; context files need Python 3.9 or newer; ${howTo}\n`,
    );
  });
});

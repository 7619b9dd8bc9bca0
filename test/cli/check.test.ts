// `amore-proto check` through the built CLI: output formats, exit codes, the target version, and
// a run with no Python anywhere on PATH.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pty from 'node-pty';
import { DatabaseDir } from '../../src/database-dir.js';
import { openDatabase } from '../../src/db/database.js';
import { makeTempDir, runCli } from '../helpers/cli.js';
import { CLI_PATH, FIXTURES_DIR, TEST_PYTHON } from '../helpers/paths.js';
import { ensurePyflakesWheel } from '../validate/pyflakes-wheel.js';

const tmp = makeTempDir('damnit-check-');
after(() => tmp.cleanup());
before(() => ensurePyflakesWheel());

const corpusFile = (group: string, name: string): string => path.join(FIXTURES_DIR, 'contexts', group, name);
const VALID = corpusFile('valid', 'seed-example.py');
const WARNINGS = corpusFile('valid', 'pyflakes-warnings.py');
const CYCLE = corpusFile('errors', 'cycle.py');
const RAW_ON_PROC = corpusFile('errors', 'raw-depends-on-proc.py');
const fromFixtures = (file: string): string => path.relative(FIXTURES_DIR, file);

function write(name: string, text: string): string {
  const file = path.join(tmp.dir, name);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, text);
  return file;
}

/** A database directory whose context_python is `python`. */
function database(name: string, python: string): string {
  const dir = path.join(tmp.dir, name);
  mkdirSync(dir, { recursive: true });
  const db = openDatabase(new DatabaseDir(dir), { create: true });
  try {
    db.metameta.set('context_python', python);
  } finally {
    db.close();
  }
  return dir;
}

const TYPE_STATEMENT = 'type Energy = float\n';

describe('exit status and text output', () => {
  test('a valid file: exit 0, nothing on stdout, a summary on stderr', async () => {
    const result = await runCli(['check', VALID], { cwd: tmp.dir });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, '');
    assert.equal(result.stderr, '1 file checked: no problems\n');
  });

  test('warnings alone: exit 0, one file:line:col line each; --strict makes them fail', async () => {
    const result = await runCli(['check', 'pyflakes-warnings.py'], { cwd: path.dirname(WARNINGS) });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(
      result.stdout,
      "pyflakes-warnings.py:4:1: warning: 'os' imported but unused\n" +
        "pyflakes-warnings.py:10:5: warning: local variable 'unused' is assigned to but never used\n",
    );
    assert.match(result.stderr, /0 errors, 2 warnings/);
    const strict = await runCli(['check', '--strict', WARNINGS], { cwd: tmp.dir });
    assert.equal(strict.code, 1);
  });

  test('many files in one run: every problem of every file, exit 1', async () => {
    const result = await runCli(['check', ...[VALID, CYCLE, WARNINGS, RAW_ON_PROC].map(fromFixtures)], { cwd: FIXTURES_DIR });
    assert.equal(result.code, 1);
    const lines = result.stdout.trimEnd().split('\n');
    assert.deepEqual(
      lines.map((l) => /^([^:]+):(\d+):(\d+): (error|warning):/.exec(l)?.slice(1)).filter(Boolean),
      [
        ['contexts/errors/cycle.py', '6', '1', 'error'],
        ['contexts/valid/pyflakes-warnings.py', '4', '1', 'warning'],
        ['contexts/valid/pyflakes-warnings.py', '10', '5', 'warning'],
        ['contexts/errors/raw-depends-on-proc.py', '10', '1', 'error'],
      ],
    );
    // A message of several lines continues, indented, under its location.
    assert.ok(lines.includes("    Remove data='raw' for early or change it to data='proc'"));
    assert.match(result.stderr, /4 files checked: 2 errors, 2 warnings/);
  });

  test('usage errors exit 2', async () => {
    for (const args of [
      ['check'],
      ['check', 'no-such-file.py'],
      ['check', tmp.dir],
      ['check', '--python-version', '3.8', VALID],
      ['check', '--python-version', 'eleven', VALID],
      ['check', '--format', 'xml', VALID],
    ]) {
      const result = await runCli(args, { cwd: tmp.dir });
      assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
      assert.equal(result.stdout, '');
    }
  });
});

describe('machine-readable output', () => {
  test('--json (and --format json): every file with its target and diagnostics', async () => {
    for (const flag of [['--json'], ['--format', 'json']]) {
      const result = await runCli(['check', ...flag, CYCLE, WARNINGS], { cwd: tmp.dir });
      assert.equal(result.code, 1);
      const doc = JSON.parse(result.stdout) as {
        files: { file: string; python_version: string; diagnostics: { severity: string; line: number; column: number; message: string; kind: string; variable: string | null }[] }[];
        errors: number;
        warnings: number;
        pyflakes: { available: boolean; version?: string };
      };
      assert.deepEqual([doc.errors, doc.warnings], [1, 2]);
      assert.deepEqual(doc.files.map((f) => [f.file, f.python_version]), [
        [CYCLE, '3.11'],
        [WARNINGS, '3.11'],
      ]);
      const cycle = doc.files[0]?.diagnostics[0];
      assert.deepEqual(
        [cycle?.severity, cycle?.kind, cycle?.line, cycle?.column, cycle?.variable],
        ['error', 'context', 6, 1, 'a'],
      );
      assert.equal(doc.pyflakes.available, true);
    }
  });

  test('--format github: workflow commands, with newlines and separators escaped', async () => {
    const result = await runCli(['check', '--format', 'github', fromFixtures(RAW_ON_PROC), fromFixtures(WARNINGS)], {
      cwd: FIXTURES_DIR,
    });
    assert.equal(result.code, 1);
    const lines = result.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 3);
    assert.equal(
      lines[0],
      '::error file=contexts/errors/raw-depends-on-proc.py,line=10,col=1,title=amore-proto check (context)::' +
        "Variable early is triggered by migration of raw data (data='raw'), but depends on these Variables " +
        "that require proc data: corrected%0ARemove data='raw' for early or change it to data='proc'",
    );
    assert.equal(
      lines[1],
      "::warning file=contexts/valid/pyflakes-warnings.py,line=4,col=1,title=amore-proto check (pyflakes)::'os' imported but unused",
    );
  });
});

describe('in a terminal', () => {
  test('each problem shows its source line with a caret under the column', async () => {
    const file = write('terminal/context.py', 'from damnit_ctx import Variable\n\n@Variable(title="A", data="proc", units="")\ndef a(run):\n    return 1\n');
    const output = await new Promise<{ code: number; text: string }>((resolve) => {
      const term = pty.spawn(process.execPath, [CLI_PATH, 'check', 'context.py'], {
        cwd: path.dirname(file),
        cols: 200,
        rows: 40,
        env: { ...process.env, NO_COLOR: '1' } as Record<string, string>,
      });
      let text = '';
      term.onData((data) => {
        text += data;
      });
      term.onExit(({ exitCode }) => resolve({ code: exitCode, text: text.replace(/\r\n/g, '\n') }));
    });
    assert.equal(output.code, 1);
    assert.ok(
      output.text.includes(
        "context.py:4:1: error: units='' for variable a (must be a non-empty string)\n" +
          '  4 | def a(run):\n' +
          '    | ^\n',
      ),
      output.text,
    );
  });

  test('the cold start shows a status line, cleared before the report; none outside a terminal', async () => {
    const file = write('terminal-status/context.py', 'from damnit_ctx import Variable\n');
    const text = await new Promise<string>((resolve) => {
      const term = pty.spawn(process.execPath, [CLI_PATH, 'check', 'context.py'], {
        cwd: path.dirname(file),
        cols: 200,
        rows: 40,
        env: { ...process.env, NO_COLOR: '1' } as Record<string, string>,
      });
      let out = '';
      term.onData((data) => {
        out += data;
      });
      term.onExit(() => resolve(out));
    });
    const shown = text.indexOf('\x1b[2KStarting the Python checker (Pyodide, no Python needed)... 0.0 s');
    assert.ok(shown >= 0, JSON.stringify(text));
    assert.ok(text.indexOf('\r\x1b[2K', shown + 1) < text.indexOf('1 file checked'), 'cleared before the summary');
    const piped = await runCli(['check', file], { cwd: tmp.dir });
    assert.doesNotMatch(piped.stderr, /Starting the Python checker/);
  });
});

describe('target Python version', () => {
  test('3.11 by default, --python-version otherwise', async () => {
    const file = write('version/types.py', TYPE_STATEMENT);
    const byDefault = await runCli(['check', file], { cwd: tmp.dir });
    assert.equal(byDefault.code, 1);
    assert.match(byDefault.stdout, /types\.py:1:\d+: error: Type statement is only supported in Python 3\.12 and greater/);
    const newer = await runCli(['check', '--python-version', '3.12', file], { cwd: tmp.dir });
    assert.equal(newer.code, 0, newer.stdout);
  });

  test("in a database directory, the context_python's version", async () => {
    const fake312 = write(
      'bin/python3.12',
      '#!/bin/sh\necho \'{"version": "3.12.1", "version_info": [3, 12, 1], "executable": "/opt/py312", "prefix": "/opt"}\'\n',
    );
    chmodSync(fake312, 0o755);
    const db312 = database('db312', fake312);
    writeFileSync(path.join(db312, 'context.py'), TYPE_STATEMENT);
    const db311 = database('db311', TEST_PYTHON);
    writeFileSync(path.join(db311, 'context.py'), TYPE_STATEMENT);

    // The file's own database directory decides, wherever check runs from.
    const both = await runCli(['check', '--json', 'db312/context.py', 'db311/context.py'], { cwd: tmp.dir });
    const doc = JSON.parse(both.stdout) as { files: { python_version: string; diagnostics: unknown[] }[] };
    assert.deepEqual(doc.files.map((f) => [f.python_version, f.diagnostics.length]), [
      ['3.12', 0],
      ['3.11', 1],
    ]);
    // --python-version, when given, wins.
    const explicit = await runCli(['check', '--python-version', '3.12', 'context.py'], { cwd: db311 });
    assert.equal(explicit.code, 0);
  });

  test('a context_python that does not run here is noted, never required', async () => {
    const dir = database('db-missing-python', '/nonexistent/bin/python3');
    writeFileSync(path.join(dir, 'context.py'), TYPE_STATEMENT);
    const result = await runCli(['check', 'context.py'], { cwd: dir });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /note: context_python \/nonexistent\/bin\/python3 does not exist: checking for Python 3\.11 instead/);
    assert.match(result.stdout, /context\.py:1:\d+: error: Type statement/);
  });
});

describe('without Python, without pyflakes', () => {
  test('check works with no Python on PATH', async () => {
    // Node lives in /usr/bin beside python3 here: give the CLI a PATH with node alone.
    const bin = path.join(tmp.dir, 'node-only-bin');
    mkdirSync(bin);
    symlinkSync(process.execPath, path.join(bin, 'node'));
    const env = { PATH: bin, DAMNIT_CONTEXT_PYTHON: '' };
    const which = await runCli(['check', VALID, CYCLE, WARNINGS], { cwd: tmp.dir, env });
    assert.equal(which.code, 1, which.stderr);
    assert.match(which.stdout, /cycle\.py:6:1: error: These Variables have cyclical dependencies/);
    assert.match(which.stdout, /pyflakes-warnings\.py:4:1: warning: 'os' imported but unused/);
    assert.match(which.stderr, /3 files checked: 1 error, 2 warnings/);
  });

  test('without the wheel: one line says pyflakes warnings were skipped', async () => {
    const empty = path.join(tmp.dir, 'no-wheels');
    mkdirSync(empty);
    const result = await runCli(['check', WARNINGS], { cwd: tmp.dir, env: { DAMNIT_WHEELS_DIR: empty } });
    assert.equal(result.code, 0);
    assert.equal(result.stdout, '');
    const notes = result.stderr.split('\n').filter((l) => /pyflakes/.test(l));
    assert.equal(notes.length, 1, result.stderr);
    assert.match(notes[0] ?? '', /^note: pyflakes warnings were skipped \(no pyflakes 3\.x or newer wheel in .*no-wheels; run scripts\/fetch-pyflakes\.sh/);
  });
});

// `amore-proto check` (Pyodide, source only) against the real loader (`amore-proto read-context`
// with Debian's Python) on the whole corpus: the same files have errors, on the same lines. The
// files of beyond-static/ show what only the real loader sees.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { z } from 'zod';
import { DatabaseDir } from '../../src/database-dir.js';
import { openDatabase } from '../../src/db/database.js';
import { makeTempDir, runCli, type CliResult } from '../helpers/cli.js';
import { TEST_PYTHON } from '../helpers/paths.js';
import { corpus, type CorpusFile, expectedOf } from './corpus.js';
import { ensurePyflakesWheel } from './pyflakes-wheel.js';

const CheckJson = z.object({
  files: z.array(
    z.object({
      file: z.string(),
      python_version: z.string(),
      diagnostics: z.array(
        z.object({
          severity: z.enum(['error', 'warning']),
          line: z.number().nullable(),
          column: z.number().nullable(),
          message: z.string(),
        }),
      ),
    }),
  ),
});

const files = [...corpus('valid'), ...corpus('errors'), ...corpus('beyond-static')];
const tmp = makeTempDir('damnit-agreement-');
const dirOf = (file: CorpusFile): string => `${file.group}-${file.name.replace(/\.py$/, '')}`;

let checked: z.infer<typeof CheckJson>;
const loaded = new Map<string, CliResult>();

/** Error lines of read-context's `context.py:LINE:COL: message` output. */
function loadErrorLines(result: CliResult): number[] {
  return [...result.stderr.matchAll(/^context\.py:(\d+)(?::\d+)?: /gm)].map((m) => Number(m[1]));
}

function checkErrors(file: CorpusFile): z.infer<typeof CheckJson>['files'][number]['diagnostics'] {
  const entry = checked.files.find((f) => f.file === path.join(dirOf(file), 'context.py'));
  assert.ok(entry, `check reported nothing for ${file.name}`);
  return entry.diagnostics.filter((d) => d.severity === 'error');
}

function checkErrorLines(file: CorpusFile): number[] {
  return checkErrors(file).map((d) => d.line ?? 0);
}

before(async () => {
  ensurePyflakesWheel();
  for (const file of files) {
    const dir = path.join(tmp.dir, dirOf(file));
    mkdirSync(dir);
    const db = openDatabase(new DatabaseDir(dir), { create: true });
    try {
      db.metameta.set('proposal', 1234);
      db.metameta.set('context_python', TEST_PYTHON);
    } finally {
      db.close();
    }
    copyFileSync(file.path, path.join(dir, 'context.py'));
  }
  // One check over every file (one Pyodide instance); read-context once per database.
  const result = await runCli(['check', '--json', ...files.map((f) => path.join(dirOf(f), 'context.py'))], {
    cwd: tmp.dir,
  });
  assert.ok(result.code === 0 || result.code === 1, result.stderr);
  checked = CheckJson.parse(JSON.parse(result.stdout));
  const queue = [...files];
  const worker = async (): Promise<void> => {
    for (let file = queue.shift(); file; file = queue.shift()) {
      loaded.set(file.name, await runCli(['read-context'], { cwd: path.join(tmp.dir, dirOf(file)) }));
    }
  };
  await Promise.all([worker(), worker()]);
});
after(() => tmp.cleanup());

describe('check and read-context agree', () => {
  test('check targets the version of the database context_python', () => {
    assert.ok(checked.files.every((f) => f.python_version === '3.11'), JSON.stringify(checked.files.map((f) => f.python_version)));
  });

  for (const file of files.filter((f) => f.group !== 'beyond-static')) {
    test(`${file.group}/${file.name}`, () => {
      const load = loaded.get(file.name);
      assert.ok(load);
      const fromCheck = checkErrorLines(file);
      const fromLoad = loadErrorLines(load);
      assert.equal(fromCheck.length > 0, load.code !== 0, `check: ${JSON.stringify(fromCheck)}; read-context: ${load.stderr}`);
      assert.deepEqual([...new Set(fromCheck)].sort(), [...new Set(fromLoad)].sort(), load.stderr);
      assert.deepEqual(fromCheck, expectedOf(file, 'error').map((e) => e.line));
    });
  }
});

describe('what only the real interpreter sees', () => {
  for (const file of files.filter((f) => f.group === 'beyond-static')) {
    test(`${file.name}: check passes, read-context fails where the file says`, () => {
      const load = loaded.get(file.name);
      assert.ok(load);
      assert.deepEqual(checkErrorLines(file), []);
      assert.equal(load.code, 1);
      const [expected] = expectedOf(file, 'load-error');
      assert.ok(expected);
      assert.deepEqual(loadErrorLines(load), [expected.line]);
      assert.match(load.stderr, new RegExp(expected.words, 'i'));
    });
  }
});

// Issue 9's bad input for groups and pipelines, and issue 15's names: not only the same lines,
// the same error at the same `context.py:LINE:COL`, word for word.
describe('the same error at the same place, word for word', () => {
  const exact = /^(group-|pipeline-|reserved-name|invalid-name)/;
  for (const file of files.filter((f) => f.group === 'errors' && exact.test(f.name))) {
    test(`${file.group}/${file.name}`, () => {
      const load = loaded.get(file.name);
      assert.ok(load);
      const fromCheck = checkErrors(file).map((d) => `context.py:${d.line}:${d.column}: ${d.message}`);
      const fromLoad = load.stderr.split('\n').filter((l) => l.startsWith('context.py:'));
      assert.equal(fromCheck.length, 1, JSON.stringify(fromCheck));
      assert.deepEqual(fromLoad, fromCheck);
    });
  }
});

// The shim's `describe` command and context loader, run directly in a real interpreter with a
// file channel: every load problem with the reference's wording and its line, promotion, order.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import type { ContextMessage, LoadErrorMessage, VariableInfo } from '../../src/context/protocol.js';
import { makeTempDir } from '../helpers/cli.js';
import { describeShim, loaded, loadFailed, runOk, writeContext, type DescribeOutput } from './runner-helpers.js';

const tmp = makeTempDir('damnit-describe-');
after(() => tmp.cleanup());

let counter = 0;

/** Runs `describe` on a context given as text (or bytes) and returns every message it sent. */
async function describeSource(
  source: string | Buffer,
  opts: { python?: string; extraFiles?: Record<string, string> } = {},
): Promise<DescribeOutput> {
  counter += 1;
  const dir = path.join(tmp.dir, `ctx${counter}`);
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'context.py');
  writeFileSync(file, source);
  for (const [name, text] of Object.entries(opts.extraFiles ?? {})) writeFileSync(path.join(dir, name), text);
  return describeShim(file, opts.python);
}

async function loadOk(source: string, python?: string): Promise<ContextMessage> {
  return loaded(await describeSource(source, { python }));
}

async function loadError(source: string | Buffer): Promise<LoadErrorMessage> {
  return loadFailed(await describeSource(source));
}

function byName(context: ContextMessage): Map<string, VariableInfo> {
  return new Map(context.variables.map((v) => [v.name, v]));
}

const HEADER = 'from damnit_ctx import Variable, Cell, Skip\n';

describe('describe: a context that loads', () => {
  test('reports hello then context, and reads every decorator argument', async () => {
    const { messages, exitCode } = await describeSource(
      HEADER +
        '\n' +
        '@Variable(title="XGM intensity [uJ]", summary="mean", units="uJ", tags=["xgm", "beam"])\n' +
        'def xgm(run):\n' +
        '    """\n    Mean XGM intensity per-train.\n    """\n' +
        '    return 1\n' +
        '\n' +
        '@Variable\n' +
        'def bare(run, n: "meta#run_number", p: "meta#proposal_dir", x: "var#xgm" = 3):\n' +
        '    return n\n',
    );
    assert.equal(exitCode, 0);
    assert.deepEqual(
      messages.map((m) => m.kind),
      ['hello', 'context'],
    );
    const context = messages[1] as ContextMessage;
    assert.deepEqual(context.static_problems, []);
    const vars = byName(context);
    assert.deepEqual(vars.get('xgm'), {
      name: 'xgm',
      title: 'XGM intensity [uJ]',
      description: 'Mean XGM intensity per-train.',
      summary: 'mean',
      data: 'raw',
      cluster: false,
      tags: ['xgm', 'beam'],
      transient: false,
      units: 'uJ',
      parameters: [],
      dependencies: [],
      line: 4,
    });
    assert.deepEqual(vars.get('bare'), {
      name: 'bare',
      title: 'bare',
      description: null,
      summary: null,
      data: 'raw',
      cluster: false,
      tags: [],
      transient: false,
      units: null,
      parameters: [
        { name: 'n', annotation: 'meta#run_number', has_default: false },
        { name: 'p', annotation: 'meta#proposal_dir', has_default: false },
        { name: 'x', annotation: 'var#xgm', has_default: true },
      ],
      dependencies: ['xgm'],
      line: 11,
    });
  });

  test('an empty file is a valid context with no variables', async () => {
    const context = await loadOk('');
    assert.deepEqual(context.variables, []);
    assert.deepEqual(context.static_problems, []);
  });

  test('description: the argument wins over the docstring', async () => {
    const vars = byName(
      await loadOk(HEADER + '@Variable(description="given")\ndef a(run):\n    """docstring"""\n'),
    );
    assert.equal(vars.get('a')?.description, 'given');
  });

  test('a single tag string is one tag; transient and unicode titles are reported', async () => {
    const vars = byName(
      await loadOk(HEADER + '@Variable(title="Énergie ✓ 能量", tags="beam", transient=True)\ndef a(run):\n    return 1\n'),
    );
    assert.equal(vars.get('a')?.title, 'Énergie ✓ 能量');
    assert.deepEqual(vars.get('a')?.tags, ['beam']);
    assert.equal(vars.get('a')?.transient, true);
  });

  test("execution order is the reference's: in waves of variables whose dependencies ran", async () => {
    // The reference's ctxrunner orders with graphlib: every variable without dependencies first
    // (in the order they entered the graph), then those that only needed them, and so on.
    const context = await loadOk(
      HEADER +
        '@Variable\ndef c(run, x: "var#b"): pass\n' +
        '@Variable\ndef a(run): pass\n' +
        '@Variable\ndef b(run, x: "var#a"): pass\n' +
        '@Variable\ndef d(run): pass\n',
    );
    assert.deepEqual(
      context.variables.map((v) => v.name),
      ['a', 'd', 'b', 'c'],
    );
  });

  test('variables run in that order: the log says so', async () => {
    counter += 1;
    const file = writeContext(
      path.join(tmp.dir, `ctx${counter}`),
      HEADER +
        '@Variable\ndef c(run, x: "var#b"):\n    return x\n' +
        '@Variable\ndef a(run):\n    return 1\n' +
        '@Variable\ndef b(run, x: "var#a"):\n    return x\n' +
        '@Variable\ndef d(run):\n    return 4\n',
    );
    const out = await runOk(file);
    assert.deepEqual(
      [...out.stderr.matchAll(/Computed (\w+) in/g)].map((m) => m[1]),
      ['a', 'd', 'b', 'c'],
    );
  });

  test('a dependency defined after its dependant enters the order where it is first named', async () => {
    const context = await loadOk(
      HEADER +
        '@Variable\ndef b(run, x: "var#late", y: "var#early"): pass\n' +
        '@Variable\ndef early(run): pass\n' +
        '@Variable\ndef e(run): pass\n' +
        '@Variable\ndef late(run): pass\n' +
        '@Variable\ndef d(run, x: "var#b"): pass\n',
    );
    assert.deepEqual(
      context.variables.map((v) => v.name),
      ['late', 'early', 'e', 'b', 'd'],
    );
  });

  test('glob dependencies expand to every matching variable', async () => {
    const vars = byName(
      await loadOk(
        HEADER +
          '@Variable\ndef det_a(run): pass\n@Variable\ndef det_b(run): pass\n' +
          '@Variable\ndef total(run, parts: "var#det_*"): pass\n',
      ),
    );
    assert.deepEqual(vars.get('total')?.dependencies, ['det_a', 'det_b']);
  });

  test('promotion: depending on proc makes proc, depending on cluster makes cluster, transitively', async () => {
    const vars = byName(
      await loadOk(
        HEADER +
          '@Variable(data="proc")\ndef p(run): pass\n' +
          '@Variable(cluster=True)\ndef heavy(run): pass\n' +
          '@Variable\ndef mid(run, x: "var#p"): pass\n' +
          '@Variable\ndef top(run, x: "var#mid", y: "var#heavy"): pass\n' +
          '@Variable\ndef alone(run): pass\n',
      ),
    );
    assert.equal(vars.get('mid')?.data, 'proc');
    assert.equal(vars.get('mid')?.cluster, false);
    assert.equal(vars.get('top')?.data, 'proc');
    assert.equal(vars.get('top')?.cluster, true);
    assert.equal(vars.get('alone')?.data, 'raw');
    assert.equal(vars.get('heavy')?.cluster, true);
  });

  test('problems that fail only their variable at run time are static problems, with the def line', async () => {
    const context = await loadOk(
      HEADER + '\n@Variable(summary="average_of_things")\ndef a(run, x: "weird#thing"):\n    pass\n',
    );
    assert.deepEqual(
      context.static_problems.map((p) => [p.kind, p.message, p.line, p.column, p.variable]),
      [
        [
          'context',
          "summary='average_of_things' for variable a is not a numpy reduction (such as 'mean', 'sum' or 'nanmax')",
          4,
          1,
          'a',
        ],
        ['context', "Unknown path 'weird#thing' for variable 'a'", 4, 1, 'a'],
      ],
    );
  });

  test("what the context prints goes to the process's stdout and stderr, never the channel", async () => {
    const { messages, stdout, stderr } = await describeSource(
      'import sys\nprint(\'{"protocol": 1, "kind": "fatal"}\')\nprint("to stderr", file=sys.stderr)\n',
    );
    assert.deepEqual(
      messages.map((m) => m.kind),
      ['hello', 'context'],
    );
    assert.match(stdout, /"kind": "fatal"/);
    assert.match(stderr, /to stderr/);
  });

  test('the context is a real module: dataclasses and pickling of its classes work', async () => {
    await loadOk(
      'import dataclasses, pickle\n' +
        '@dataclasses.dataclass\nclass Point:\n    x: int\n' +
        'assert pickle.loads(pickle.dumps(Point(3))) == Point(3)\n',
    );
  });

  test('modules next to context.py are importable', async () => {
    const { messages } = await describeSource('import my_helpers\nassert my_helpers.VALUE == 42\n', {
      extraFiles: { 'my_helpers.py': 'VALUE = 42\n' },
    });
    assert.equal(messages.at(-1)?.kind, 'context');
  });

  test('Cell and Skip keep what they are given', async () => {
    await loadOk(
      HEADER +
        'c = Cell([1, 2], summary="sum", summary_value=3, bold=True, background="#ffcc00", preview=[1], units="m")\n' +
        'assert (c.data, c.summary, c.summary_value, c.bold, c.background, c.preview, c.units) == ' +
        '([1, 2], "sum", 3, True, "#ffcc00", [1], "m")\n' +
        'assert issubclass(Skip, Exception)\n',
    );
  });
});

describe('describe: contexts that fail to load', () => {
  test('syntax error: its line and 1-based column', async () => {
    const error = await loadError('x = 1\ny = (1,\n');
    assert.equal(error.problems.length, 1);
    assert.deepEqual(
      { ...error.problems[0], file: path.basename(error.problems[0]?.file ?? '') },
      { kind: 'syntax', message: "'(' was never closed", file: 'context.py', line: 2, column: 5, variable: null },
    );
    assert.match(error.traceback ?? '', /SyntaxError/);
  });

  test('import error: the line of the import, the module named, a traceback from the context', async () => {
    const error = await loadError('import os\n\nimport no_such_module_here\n');
    assert.equal(error.problems[0]?.kind, 'import');
    assert.equal(error.problems[0]?.line, 3);
    assert.equal(error.problems[0]?.message, "ModuleNotFoundError: No module named 'no_such_module_here'");
    assert.match(error.traceback ?? '', /context\.py", line 3/);
    assert.doesNotMatch(error.traceback ?? '', /context_loader\.py/);
  });

  test('an exception at import: the line in the context file where it was raised', async () => {
    const error = await loadError('def helper():\n    return {}["missing"]\n\nvalue = helper()\n');
    assert.equal(error.problems[0]?.kind, 'exception');
    assert.equal(error.problems[0]?.message, "KeyError: 'missing'");
    assert.equal(error.problems[0]?.line, 2);
  });

  test('sys.exit() at import is a load error, not a silent exit', async () => {
    const error = await loadError('import sys\nsys.exit(4)\n');
    assert.equal(error.problems[0]?.message, 'SystemExit: 4');
    assert.equal(error.problems[0]?.line, 2);
  });

  test('non-UTF-8 source: line and column of the first bad byte', async () => {
    const error = await loadError(Buffer.from('x = 1\ntitle = "caf\xe9"\n', 'latin1'));
    assert.deepEqual(
      [error.problems[0]?.kind, error.problems[0]?.line, error.problems[0]?.column],
      ['encoding', 2, 13],
    );
    assert.match(error.problems[0]?.message ?? '', /0xe9.*UTF-8/);
  });

  // Contract section 5: each load-time error, with the reference's wording and the def line.
  const contractCases: { name: string; source: string; message: string; line: number }[] = [
    {
      name: 'duplicate titles',
      source: '@Variable(title="Same")\ndef a(run): pass\n@Variable(title="Same")\ndef b(run): pass\n',
      message: 'These Variables have duplicate titles between them: a, b',
      line: 5,
    },
    {
      name: 'a title equal to another variable name',
      source: '@Variable\ndef a(run): pass\n@Variable(title="a")\ndef b(run): pass\n',
      message: 'These Variables have duplicate titles between them: a, b',
      line: 5,
    },
    {
      name: 'dependency cycle',
      source: '@Variable\ndef a(run, x: "var#b"): pass\n@Variable\ndef b(run, x: "var#a"): pass\n',
      message: "These Variables have cyclical dependencies, which is not allowed: ['a', 'b', 'a']",
      line: 3,
    },
    {
      name: 'var# naming no variable',
      source: '@Variable\ndef foo(run, x: "var#x"): pass\n',
      message: "Missing dependency: 'x' for 'foo'",
      line: 3,
    },
    {
      name: 'explicit raw depending on proc',
      source: '@Variable(data="proc")\ndef p(run): pass\n@Variable(data="raw")\ndef r(run, x: "var#p"): pass\n',
      message:
        "Variable r is triggered by migration of raw data (data='raw'), but depends on these Variables " +
        "that require proc data: p\nRemove data='raw' for r or change it to data='proc'",
      line: 5,
    },
    {
      name: 'data other than raw/proc',
      source: '@Variable(data="calibrated")\ndef a(run): pass\n',
      message: "data='calibrated' for variable a (can be 'raw'/'proc')",
      line: 3,
    },
    {
      name: 'an unknown mymdc# field',
      source: '@Variable\ndef a(run, s: "mymdc#sample"): pass\n',
      message: "Argument 's' of variable 'a' has an invalid MyMdC dependency: 'sample'",
      line: 3,
    },
    {
      name: 'empty units',
      source: '@Variable(units="")\ndef a(run): pass\n',
      message: "units='' for variable a (must be a non-empty string)",
      line: 3,
    },
    {
      name: 'tags that are not strings',
      source: '@Variable(tags=["ok", 3])\ndef a(run): pass\n',
      message: "tags=['ok', 3] for variable a (must be a non-empty string or an iterable of strings)",
      line: 3,
    },
    {
      name: 'an empty tag',
      source: '@Variable(tags="")\ndef a(run): pass\n',
      message: "tags=('',) for variable a (must be a non-empty string or an iterable of strings)",
      line: 3,
    },
  ];
  for (const c of contractCases) {
    test(`context rule: ${c.name}`, async () => {
      const error = await loadError(HEADER + c.source);
      assert.deepEqual(
        error.problems.map((p) => [p.kind, p.message, p.line]),
        [['context', c.message, c.line]],
      );
    });
  }

  test('several problems are all reported, in the reference order', async () => {
    const error = await loadError(
      HEADER +
        '@Variable(title="T", units="")\ndef a(run, s: "mymdc#nope"): pass\n' +
        '@Variable(title="T", data="x")\ndef b(run): pass\n',
    );
    assert.deepEqual(
      error.problems.map((p) => p.message),
      [
        "units='' for variable a (must be a non-empty string)",
        "data='x' for variable b (can be 'raw'/'proc')",
        'These Variables have duplicate titles between them: a, b',
        "Argument 's' of variable 'a' has an invalid MyMdC dependency: 'nope'",
      ],
    );
  });
});

// The shim must run unchanged on Python 3.9 to 3.12: try whichever of those this machine has
// besides the test interpreter (pyenv builds here; none elsewhere means nothing to try).
const PYENV_VERSIONS = path.join(os.homedir(), '.pyenv', 'versions');
const otherPythons = existsSync(PYENV_VERSIONS)
  ? readdirSync(PYENV_VERSIONS)
      .filter((d) => /^3\.(9|10|12)\.\d+$/.test(d))
      .map((d) => path.join(PYENV_VERSIONS, d, 'bin', 'python'))
      .filter((p) => existsSync(p))
  : [];

describe('describe on other Python versions', () => {
  test('loads a context and reports problems the same way', { skip: otherPythons.length === 0 }, async () => {
    const source =
      HEADER +
      '@Variable(data="proc")\ndef p(run): pass\n' +
      '@Variable(title="Top", cluster=True)\ndef top(run, x: "var#p", n: "meta#run_number" = 1): pass\n';
    const expected = await loadOk(source);
    for (const python of otherPythons) {
      const context = await loadOk(source, python);
      assert.deepEqual(context.variables, expected.variables, python);
    }
  });
});

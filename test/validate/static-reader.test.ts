// The offline validator (static_reader.py in Pyodide) on the corpus and on the cases around it.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Diagnostic, PythonVersion, StaticReading } from '../../src/validate/diagnostics.js';
import { ContextValidator, findPyflakesWheel } from '../../src/validate/validator.js';
import { makeTempDir } from '../helpers/cli.js';
import { corpus, expectedOf } from './corpus.js';
import { ensurePyflakesWheel } from './pyflakes-wheel.js';

const PY311: PythonVersion = { major: 3, minor: 11 };
let validator: ContextValidator;

before(async () => {
  ensurePyflakesWheel();
  validator = await ContextValidator.start();
});
after(() => validator?.close());

function check(source: string | Buffer, target: PythonVersion = PY311): StaticReading {
  return validator.check(typeof source === 'string' ? Buffer.from(source) : source, 'context.py', target);
}

const errors = (r: StaticReading): Diagnostic[] => r.diagnostics.filter((d) => d.severity === 'error');
const warnings = (r: StaticReading): Diagnostic[] => r.diagnostics.filter((d) => d.severity === 'warning');

function assertMatches(found: Diagnostic[], expected: { line: number; words: string }[], what: string): void {
  assert.deepEqual(
    found.map((d) => d.line),
    expected.map((e) => e.line),
    `${what}: ${JSON.stringify(found.map((d) => `${d.line}: ${d.message}`))}`,
  );
  expected.forEach((e, i) => {
    assert.match(found[i]?.message ?? '', new RegExp(e.words.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'i'));
  });
}

describe('the corpus', () => {
  for (const file of [...corpus('valid'), ...corpus('errors'), ...corpus('beyond-static')]) {
    test(`${file.group}/${file.name}`, () => {
      const reading = check(readFileSync(file.path));
      assertMatches(errors(reading), expectedOf(file, 'error'), 'errors');
      assertMatches(warnings(reading), expectedOf(file, 'warning'), 'warnings');
    });
  }

  test('pyflakes is loaded from the local wheel', () => {
    assert.equal(validator.pyflakes.available, true);
    assert.ok(validator.pyflakes.available && Number(validator.pyflakes.version.split('.')[0]) >= 3);
  });
});

describe('target Python version', () => {
  const cases: [string, string, number, number][] = [
    ['match statement', 'match x:\n    case 1:\n        pass\n', 9, 10],
    ['except*', 'try:\n    pass\nexcept* ValueError:\n    pass\n', 10, 11],
    ['type statement', 'type Energy = float\n', 11, 12],
    ['generic function', 'def f[T](x: T) -> T:\n    return x\n', 11, 12],
    ['f-string reusing its quote', 'd = {}\nx = f"{d["k"]}"\n', 11, 12],
    ['backslash in an f-string field', 'x = f"{"\\n".join([])}"\n', 11, 12],
    ['comment in an f-string field', 'x = f"""{1 # one\n}"""\n', 11, 12],
    ['starred expression in a subscript', 'a = {}\nb = ()\na[*b]\n', 10, 11],
    ['starred annotation', 'def f(*args: *tuple[int, ...]):\n    pass\n', 10, 11],
    ['except without parentheses', 'try:\n    pass\nexcept ValueError, TypeError:\n    pass\n', 13, 14],
  ];
  for (const [what, source, failsOn, passesOn] of cases) {
    test(`${what}: an error for 3.${failsOn}, none for 3.${passesOn}`, () => {
      const old = errors(check(source, { major: 3, minor: failsOn }));
      assert.equal(old.length, 1, JSON.stringify(old));
      assert.equal(old[0]?.kind, 'syntax');
      assert.deepEqual(errors(check(source, { major: 3, minor: passesOn })), []);
    });
  }

  test('the error names the line and column of the offending quote', () => {
    const [error] = errors(check('d = {}\nx = f"{d["k"]}"\n'));
    assert.equal(error?.line, 2);
    assert.equal(error?.column, 10);
    assert.match(error?.message ?? '', /3\.12/);
  });
});

describe('pyflakes warnings', () => {
  test('undefined names read into var#/meta#/mymdc#/self# annotations are dropped, real ones kept', () => {
    const source = [
      'from damnit_ctx import Variable',
      '',
      '@Variable(title="A")',
      'def a(run, n: "meta#run_number", s: "mymdc#sample_name"):',
      '    return n',
      '',
      '@Variable(title="B")',
      'def b(run, x: "var#a"):',
      '    return var + meta',
      '',
    ].join('\n');
    const found = warnings(check(source));
    assert.deepEqual(
      found.map((d) => [d.line, d.message]),
      [
        [9, "undefined name 'var'"],
        [9, "undefined name 'meta'"],
      ],
    );
  });

  test('columns count characters, not UTF-8 bytes', () => {
    const [warning] = warnings(check('é = "ü"; print(undefined_näme)\n'));
    assert.equal(warning?.message, "undefined name 'undefined_näme'");
    assert.equal(warning?.column, 16);
  });

  test('Python warnings at compile time are warnings', () => {
    const found = warnings(check('import re\npattern = re.compile("\\d+")\n'));
    assert.equal(found.length, 1);
    assert.match(found[0]?.message ?? '', /invalid escape sequence/);
    assert.equal(found[0]?.line, 2);
  });

  test('without the wheel the check runs and says pyflakes was skipped', async () => {
    const empty = makeTempDir('damnit-no-wheels-');
    const bare = await ContextValidator.start({ wheelsDir: empty.dir });
    try {
      assert.equal(bare.pyflakes.available, false);
      assert.match(!bare.pyflakes.available ? bare.pyflakes.reason : '', /no pyflakes 3\.x or newer wheel/);
      const reading = bare.check(Buffer.from('import os\n'), 'context.py', PY311);
      assert.deepEqual(reading.diagnostics, []);
    } finally {
      bare.close();
      empty.cleanup();
    }
  });

  test('an old pyflakes wheel is not used', () => {
    const dir = makeTempDir('damnit-old-wheels-');
    try {
      writeFileSync(path.join(dir.dir, 'pyflakes-2.5.0-py2.py3-none-any.whl'), '');
      assert.ok('reason' in findPyflakesWheel(dir.dir));
      mkdirSync(path.join(dir.dir, 'sub'));
      writeFileSync(path.join(dir.dir, 'pyflakes-10.1.0-py3-none-any.whl'), '');
      writeFileSync(path.join(dir.dir, 'pyflakes-9.0.0-py3-none-any.whl'), '');
      const found = findPyflakesWheel(dir.dir);
      assert.ok('wheel' in found && found.wheel.endsWith('pyflakes-10.1.0-py3-none-any.whl'));
    } finally {
      dir.cleanup();
    }
  });
});

describe('reading variables from the source', () => {
  test('decorator forms, positional title, constants and aliases', () => {
    const reading = check(
      [
        'import damnit_ctx',
        'from damnit_ctx import Variable as V',
        'T = "Same"',
        '@V',
        'def a(run): pass',
        '@V("Same")',
        'def b(run): pass',
        '@damnit_ctx.Variable(title=T)',
        'def c(run): pass',
        '',
      ].join('\n'),
    );
    assert.deepEqual(
      reading.variables.map((v) => [v.name, v.title, v.line]),
      [
        ['a', 'a', 5],
        ['b', 'Same', 7],
        ['c', 'Same', 9],
      ],
    );
    assert.match(errors(reading)[0]?.message ?? '', /duplicate titles between them: b, c/);
  });

  test('a title the source does not determine is never called a duplicate', () => {
    const reading = check(
      'import os\nfrom damnit_ctx import Variable\n' +
        '@Variable(title=os.environ["X"])\ndef a(run): pass\n' +
        '@Variable(title=os.environ["X"])\ndef b(run): pass\n',
    );
    assert.deepEqual(errors(reading), []);
  });

  test('a redefined function replaces the variable but keeps its place', () => {
    const reading = check(
      'from damnit_ctx import Variable\n' +
        '@Variable(title="A")\ndef a(run): pass\n' +
        '@Variable(title="B")\ndef b(run): pass\n' +
        '@Variable(title="A2")\ndef a(run): pass\n' +
        'def b(run): pass\n',
    );
    assert.deepEqual(
      reading.variables.map((v) => [v.name, v.title]),
      [['a', 'A2']],
    );
  });

  test('Variable used any other way makes the reading incomplete: unseen dependencies are not errors', () => {
    const source =
      'from damnit_ctx import Variable\n' +
      'for i in range(2):\n    globals()[f"v{i}"] = Variable(title=f"V{i}")(lambda run: i)\n' +
      '@Variable(title="Sum")\ndef total(run, v: "var#v0"):\n    return v\n';
    const reading = check(source);
    assert.equal(reading.complete, false);
    assert.deepEqual(errors(reading), []);
    // The same dependency with every variable in sight is an error.
    const complete = check('from damnit_ctx import Variable\n@Variable(title="Sum")\ndef total(run, v: "var#v0"):\n    return v\n');
    assert.equal(complete.complete, true);
    assert.match(errors(complete)[0]?.message ?? '', /Missing dependency: 'v0' for 'total'/);
  });

  test('a decorator call Python would refuse stops the reading like the failed import it is', () => {
    const reading = check(
      'from damnit_ctx import Variable\n' +
        '@Variable("A", None, None, None, False, None, False, None, "extra")\ndef a(run): pass\n' +
        '@Variable(title="A", data="x")\ndef b(run): pass\n',
    );
    assert.deepEqual(
      errors(reading).map((d) => [d.line, d.kind, d.message]),
      [[2, 'exception', 'TypeError: Variable() takes from 1 to 9 positional arguments but 10 were given']],
    );
  });

  test('keyword-only and default parameters are read like inspect.signature sees them', () => {
    const reading = check(
      'from damnit_ctx import Variable\n' +
        '@Variable(title="A")\ndef a(run): pass\n' +
        '@Variable(title="B", data="raw")\ndef b(run, *, x: "var#a" = 1, y: "meta#nope"): pass\n',
    );
    assert.deepEqual(errors(reading), []);
    assert.deepEqual(
      warnings(reading).map((d) => [d.line, d.message]),
      [[5, "Unknown path 'meta#nope' for variable 'B'"]],
    );
  });

  test('a byte order mark is allowed; other bytes must be UTF-8', () => {
    assert.deepEqual(check(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('x = 1\n')])).diagnostics, []);
    const [error] = errors(check(Buffer.from([0x78, 0x0a, 0x79, 0x20, 0x3d, 0x20, 0xff, 0x0a])));
    assert.deepEqual([error?.kind, error?.line, error?.column], ['encoding', 2, 5]);
  });

  test('many files in one instance stay independent', () => {
    const first = check('from damnit_ctx import Variable\n@Variable(title="X")\ndef x(run): pass\n');
    const second = check('from damnit_ctx import Variable\n@Variable(title="X")\ndef x(run): pass\n');
    assert.deepEqual(first, second);
    assert.deepEqual(errors(second), []);
  });
});

describe('groups and pipelines, followed offline', () => {
  const GROUP = (target = '') =>
    'from damnit.context import Group, Variable\n\n' +
    '@Group\nclass G:\n    scale: int = 1\n\n' +
    '    @Variable(title="V")\n    def v(self, run, y: "self#w", z: "var#top", x: "param#x" = 1):\n        return x\n\n' +
    '    @Variable(title="W")\n    def w(self, run):\n        return 1\n\n' +
    '@Variable(title="Top")\ndef top(run):\n    return 1\n\n' +
    `g = G(${target})\n`;

  test('damnit.context imports, self# and param# give no pyflakes noise, and the variables are read', () => {
    const reading = check(GROUP());
    assert.deepEqual(reading.diagnostics, []);
    assert.equal(reading.complete, true);
    assert.deepEqual(
      reading.variables.map((v) => [v.name, v.title]).sort(),
      [
        ['g.v', 'g/V'],
        ['g.w', 'g/W'],
        ['top', 'Top'],
      ],
    );
  });

  test('Groups need Python 3.10: checked for 3.9, the decorator line is the error', () => {
    const reading = check(GROUP(), { major: 3, minor: 9 });
    assert.deepEqual(
      errors(reading).map((d) => [d.line, d.column, d.message]),
      [[3, 2, 'GroupError: Groups need Python 3.10 or newer (keyword-only dataclass fields); this is Python 3.9']],
    );
  });

  test('an instance made with an unknown value is not guessed at, a certain error still is', () => {
    const unknown = check(GROUP('name=make_name(), scale=3'));
    assert.deepEqual(errors(unknown), []);
    assert.equal(unknown.complete, false);
    const certain = check(GROUP('scale=3, scael=2'));
    assert.deepEqual(
      errors(certain).map((d) => [d.line, d.message]),
      [[19, "TypeError: G.__init__() got an unexpected keyword argument 'scael'"]],
    );
  });

  test('groups made in a loop the checker does not follow: nothing is guessed', () => {
    const reading = check(
      GROUP() + 'for i in range(3):\n    globals()[f"g{i}"] = G(name=f"dup")\n',
    );
    assert.deepEqual(errors(reading), []);
    assert.equal(reading.complete, false);
  });
});

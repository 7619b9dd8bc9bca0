import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { execa } from 'execa';
import { pythonFloatRepr, pythonJsonDumps, pythonRepr, pythonStrRepr } from '../../src/db/python-format.js';
import { TEST_PYTHON } from '../helpers/paths.js';

/** Asks the real interpreter for the text we imitate, one line per input. */
async function python(expression: string, inputs: unknown[]): Promise<string[]> {
  const script = `import json, sys\nfor x in json.loads(sys.stdin.read()):\n    print(${expression})`;
  const { stdout } = await execa(TEST_PYTHON, ['-c', script], { input: JSON.stringify(inputs) });
  return stdout.split('\n');
}

const FLOATS = [
  0.5, 1, 2.5, -3.25, 0.1, 1 / 3, 1e-4, 1.5e-5, 1e-7, 123456789.125, 1e15, 1e16, 1.5e16, 2 ** 60,
  1.7976931348623157e308, 5e-324, 1795488776.61178, 4.79, 100, 1e22,
];

const STRINGS = ['plain', "it's", 'say "hi"', 'both \' and "', 'tab\there\nnewline', 'back\\slash', 'ünï', '\u0001', ''];

describe('Python text forms', () => {
  it('float repr matches Python', async () => {
    const expected = await python('repr(float(x))', FLOATS);
    assert.deepEqual(FLOATS.map(pythonFloatRepr), expected);
    assert.deepEqual([Number.NaN, Infinity, -Infinity, -0].map(pythonFloatRepr), ['nan', 'inf', '-inf', '-0.0']);
  });

  it('str repr matches Python', async () => {
    assert.deepEqual(STRINGS.map(pythonStrRepr), await python('repr(x)', STRINGS));
  });

  it('json.dumps matches Python for attributes-like values', async () => {
    const values = [
      { error: 'intentional failure for testing', error_cls: 'ValueError' },
      { background: [255, 204, 0], bold: true },
      { units: 'µJ', note: 'line\nbreak "quoted"', nothing: null, nested: { a: [1.5, -2, []], b: {} } },
      { error: 'Skipped due to missing dependency:\n└ (foo) failed: ZeroDivisionError: division by zero', error_cls: 'DependencyError' },
    ];
    assert.deepEqual(values.map(pythonJsonDumps), await python('json.dumps(x)', values));
  });

  it('repr of stored values follows the storage class', () => {
    assert.equal(pythonRepr({ value: 2, storage: 'real' }), '2.0');
    assert.equal(pythonRepr({ value: 2, storage: 'integer' }), '2');
    assert.equal(pythonRepr({ value: 2n ** 62n, storage: 'integer' }), '4611686018427387904');
    assert.equal(pythonRepr({ value: 'abc', storage: 'text' }), "'abc'");
    assert.equal(pythonRepr({ value: null, storage: 'null' }), 'None');
    assert.equal(pythonRepr({ value: Buffer.from([0x41, 0x00, 0xff, 0x27]), storage: 'blob' }), 'b"A\\x00\\xff\'"');
  });
});

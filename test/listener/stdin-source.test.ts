import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';
import type { RunEvent } from '../../src/listener/events.js';
import { parseTestLine, StdinSource } from '../../src/listener/stdin-source.js';

function kinds(result: ReturnType<typeof parseTestLine>): string[] {
  assert.ok(Array.isArray(result), JSON.stringify(result));
  return result.map((e) => `${e.proposal} ${e.run} ${e.kind}`);
}

describe('listen --test input', () => {
  test("lines '<proposal> <run> [raw|proc|all]'; all (the default) is raw then proc", () => {
    assert.deepEqual(kinds(parseTestLine('1234 42 raw')), ['1234 42 raw']);
    assert.deepEqual(kinds(parseTestLine('  1234   42 proc ')), ['1234 42 proc']);
    assert.deepEqual(kinds(parseTestLine('1234 42 all')), ['1234 42 raw', '1234 42 proc']);
    assert.deepEqual(kinds(parseTestLine('1234 42')), ['1234 42 raw', '1234 42 proc']);
  });

  test('lines that cannot be read say why', () => {
    assert.deepEqual(parseTestLine('1234'), { problem: "expected '<proposal> <run> [raw|proc|all]', got '1234'" });
    assert.deepEqual(parseTestLine('p1234 42'), { problem: "proposal must be an integer, got 'p1234'" });
    assert.deepEqual(parseTestLine('1234 r42'), { problem: "run must be an integer, got 'r42'" });
    assert.deepEqual(parseTestLine('1234 42 calibrated'), { problem: "data must be raw, proc or all, got 'calibrated'" });
  });

  test('the source gives the events of each line, reports bad lines, and ends with its input', async () => {
    const input = new PassThrough();
    const source = new StdinSource(input);
    const events: RunEvent[] = [];
    const notices: string[] = [];
    await source.start((e) => events.push(e), (level, message) => notices.push(`${level}: ${message}`));
    input.end('1234 1 raw\n\nnonsense\n1234 2\n');
    await source.ended;
    assert.deepEqual(events.map((e) => `r${e.run} ${e.kind} ${e.source}`), ['r1 raw stdin', 'r2 raw stdin', 'r2 proc stdin']);
    assert.deepEqual(notices, ["warn: ignored input line: expected '<proposal> <run> [raw|proc|all]', got 'nonsense'"]);
  });
});

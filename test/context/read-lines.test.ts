import assert from 'node:assert/strict';
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';
import { readLines, type ReadLinesOptions } from '../../src/context/read-lines.js';

/** The lines readLines makes of `chunks`, written one by one. */
async function linesOf(chunks: (string | Buffer)[], opts?: ReadLinesOptions): Promise<string[]> {
  const stream = new PassThrough();
  const lines: string[] = [];
  readLines(stream, (line) => lines.push(line), opts);
  const ended = once(stream, 'end');
  for (const chunk of chunks) stream.write(chunk);
  stream.end();
  await ended;
  return lines;
}

describe('readLines', () => {
  test('lines split across chunks, CRLF endings, empty lines and a last line without its end', async () => {
    const lines = await linesOf(['one\ntw', 'o\r', '\n\nthr', 'ee']);
    assert.deepEqual(lines, ['one', 'two', '', 'three']);
  });

  test('a character whose bytes arrive in two chunks is decoded whole', async () => {
    const bytes = Buffer.from('größe\n');
    const lines = await linesOf([bytes.subarray(0, 3), bytes.subarray(3)]);
    assert.deepEqual(lines, ['größe']);
  });

  test('a line longer than the limit keeps its start and says how much was left out', async () => {
    const long = 'a'.repeat(10) + 'b'.repeat(25);
    const lines = await linesOf([long.slice(0, 7), long.slice(7, 30), `${long.slice(30)}\r\nshort\n`], {
      maxLineChars: 10,
    });
    assert.deepEqual(lines, ['aaaaaaaaaa ... [25 more characters]', 'short']);
  });

  test('a limit given as a function is asked again for each line', async () => {
    let limit = Number.POSITIVE_INFINITY;
    const stream = new PassThrough();
    const lines: string[] = [];
    readLines(
      stream,
      (line) => {
        lines.push(line);
        limit = 3;
      },
      { maxLineChars: () => limit },
    );
    const ended = once(stream, 'end');
    stream.end('header kept whole\nabcdef\n');
    await ended;
    assert.deepEqual(lines, ['header kept whole', 'abc ... [3 more characters]']);
  });

  test('a 64 MB line in 64 kB chunks is read whole when there is no limit', async () => {
    const chunk = 'z'.repeat(65_536);
    const count = 1_024;
    const lines = await linesOf([...Array.from({ length: count }, () => chunk), '\n']);
    assert.equal(lines.length, 1);
    assert.equal(lines[0]?.length, chunk.length * count);
  });
});

/**
 * Splits a byte stream into text lines in linear time: each chunk is searched once for line
 * ends, and a line arriving in many chunks is joined once, when it ends. (Appending each chunk
 * to one string and searching it from its start costs time quadratic in a line's length: a
 * 64 MB line took a minute.)
 */
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';

/** How much of one line of a context's output is kept (the channel's lines are never cut). */
export const OUTPUT_LINE_LIMIT = 16_384;

export interface ReadLinesOptions {
  /**
   * Keep at most this many characters of a line; the rest is counted, not held in memory. A
   * function is asked again for each line: a connection says what it carries in its first line.
   */
  maxLineChars?: number | (() => number);
}

/** The text of a line cut to `kept`, with what was left out said at its end. */
export function cutLine(kept: string, dropped: number): string {
  return dropped > 0 ? `${kept} ... [${dropped} more characters]` : kept;
}

/**
 * Calls onLine for each complete line of a stream (without its `\n` or `\r\n`), and for a final
 * unterminated one.
 */
export function readLines(stream: Readable, onLine: (line: string) => void, opts: ReadLinesOptions = {}): void {
  const limitOf = (): number => {
    const limit = opts.maxLineChars;
    return (typeof limit === 'function' ? limit() : limit) ?? Number.POSITIVE_INFINITY;
  };
  let limit = limitOf();
  const decoder = new StringDecoder('utf8');
  let pieces: string[] = [];
  let kept = 0;
  let dropped = 0;
  // The line's last character so far, to drop a `\r` that a cut left in `dropped`.
  let lastChar = '';

  const add = (piece: string): void => {
    if (piece === '') return;
    lastChar = piece[piece.length - 1] as string;
    const room = limit - kept;
    if (piece.length <= room) {
      pieces.push(piece);
      kept += piece.length;
    } else {
      if (room > 0) pieces.push(piece.slice(0, room));
      kept += Math.max(room, 0);
      dropped += piece.length - Math.max(room, 0);
    }
  };
  const emit = (): void => {
    let text = pieces.join('');
    let lost = dropped;
    if (lastChar === '\r') {
      if (lost > 0) lost -= 1;
      else text = text.slice(0, -1);
    }
    pieces = [];
    kept = 0;
    dropped = 0;
    lastChar = '';
    onLine(cutLine(text, lost));
    limit = limitOf();
  };
  const take = (text: string): void => {
    let start = 0;
    let newline = text.indexOf('\n');
    while (newline !== -1) {
      add(text.slice(start, newline));
      emit();
      start = newline + 1;
      newline = text.indexOf('\n', start);
    }
    add(text.slice(start));
  };

  stream.on('data', (chunk: Buffer) => take(decoder.write(chunk)));
  stream.on('end', () => {
    take(decoder.end());
    if (kept > 0 || dropped > 0) emit();
  });
}

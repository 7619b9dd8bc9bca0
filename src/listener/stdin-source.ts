/**
 * `listen --test`: events typed (or piped) on standard input, one per line, as the reference's
 * test listener reads them:
 *
 *   <proposal> <run> [raw|proc|all]
 *
 * `all` (the default) is a raw event followed by a proc event. Blank lines are skipped; a line
 * that cannot be read is reported and skipped. The source ends at the end of the input.
 */
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { excerpt } from '../text.js';
import { nowSeconds, type EventKind, type EventSink, type EventSource, type RunEvent, type SourceNotice } from './events.js';

export const STDIN_SOURCE = 'stdin';

/** The events of one input line, or why the line cannot be read. */
export function parseTestLine(line: string, time: number = nowSeconds()): RunEvent[] | { problem: string } {
  const words = line.trim().split(/\s+/);
  if (words.length < 2 || words.length > 3) {
    return { problem: `expected '<proposal> <run> [raw|proc|all]', got '${excerpt(line.trim())}'` };
  }
  const [proposalText = '', runText = '', dataText = 'all'] = words;
  if (!/^\d+$/.test(proposalText)) return { problem: `proposal must be an integer, got '${excerpt(proposalText)}'` };
  if (!/^\d+$/.test(runText)) return { problem: `run must be an integer, got '${excerpt(runText)}'` };
  if (dataText !== 'raw' && dataText !== 'proc' && dataText !== 'all') {
    return { problem: `data must be raw, proc or all, got '${excerpt(dataText)}'` };
  }
  const kinds: EventKind[] = dataText === 'all' ? ['raw', 'proc'] : [dataText];
  return kinds.map((kind) => ({ proposal: Number(proposalText), run: Number(runText), kind, source: STDIN_SOURCE, time }));
}

export class StdinSource implements EventSource {
  readonly name = STDIN_SOURCE;
  readonly ended: Promise<void>;
  private finish!: () => void;
  private reader: ReturnType<typeof createInterface> | null = null;

  constructor(private readonly input: Readable) {
    this.ended = new Promise((resolve) => {
      this.finish = resolve;
    });
  }

  async start(sink: EventSink, notice: SourceNotice): Promise<void> {
    const reader = createInterface({ input: this.input, crlfDelay: Infinity });
    this.reader = reader;
    reader.on('line', (line) => {
      if (line.trim() === '') return;
      const parsed = parseTestLine(line);
      if ('problem' in parsed) {
        notice('warn', `ignored input line: ${parsed.problem}`);
        return;
      }
      try {
        for (const event of parsed) sink(event);
      } catch (err) {
        notice('error', `could not take the event of line '${excerpt(line.trim())}': ${(err as Error).message}`);
      }
    });
    reader.on('close', () => this.finish());
  }

  async close(): Promise<void> {
    this.reader?.close();
    this.finish();
  }
}

// The context file corpus in fixtures/contexts/ and what each file says is expected of it.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { FIXTURES_DIR } from '../helpers/paths.js';

export const CORPUS_DIR = path.join(FIXTURES_DIR, 'contexts');
export type CorpusGroup = 'valid' | 'errors' | 'beyond-static';

export interface Expectation {
  kind: 'error' | 'warning' | 'load-error';
  line: number;
  words: string;
}

export interface CorpusFile {
  name: string;
  group: CorpusGroup;
  path: string;
  expected: Expectation[];
}

const MARKER = /^# expect-(error|warning|load-error): (\d+): (.+)$/;

export function corpus(group: CorpusGroup): CorpusFile[] {
  const dir = path.join(CORPUS_DIR, group);
  return readdirSync(dir)
    .filter((name) => name.endsWith('.py'))
    .sort()
    .map((name) => {
      const file = path.join(dir, name);
      const expected: Expectation[] = [];
      for (const line of readFileSync(file, 'latin1').split('\n')) {
        const match = MARKER.exec(line);
        if (match) {
          expected.push({ kind: match[1] as Expectation['kind'], line: Number(match[2]), words: match[3] ?? '' });
        }
      }
      return { name, group, path: file, expected };
    });
}

export function expectedOf(file: CorpusFile, kind: Expectation['kind']): Expectation[] {
  return file.expected.filter((e) => e.kind === kind);
}

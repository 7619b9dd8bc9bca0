import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import type { EventKind, RunEvent } from '../../src/listener/events.js';
import { FileSystemSource } from '../../src/listener/fs-source.js';
import { makeTempDir } from '../helpers/cli.js';
import { makeSampleProposal } from '../helpers/python.js';
import { eventually, PROPOSAL } from './helpers.js';

const tmp = makeTempDir('damnit-fs-source-');
after(() => tmp.cleanup());

/** A file-system source on `root` that records its events; `known` answers from what it gave. */
function watcher(root: string, known: Set<string>, adopted: RunEvent[] | null) {
  const events: string[] = [];
  const notices: string[] = [];
  const source = new FileSystemSource({
    proposal: PROPOSAL,
    proposalRoot: root,
    settleMs: 300,
    rescanMs: 200,
    known: (run: number, kind: EventKind) => known.has(`r${run} ${kind}`),
    adoptExisting: adopted
      ? (existing) => {
          adopted.push(...existing);
          for (const e of existing) known.add(`r${e.run} ${e.kind}`);
        }
      : null,
  });
  const started = source.start(
    (event) => {
      assert.equal(event.proposal, PROPOSAL);
      assert.equal(event.source, 'fs');
      events.push(`r${event.run} ${event.kind}`);
      known.add(`r${event.run} ${event.kind}`);
    },
    (level, message) => notices.push(`${level}: ${message}`),
  );
  return { source, events, notices, started };
}

describe('file-system source', () => {
  const root = path.join(tmp.dir, 'proposal');
  const known = new Set<string>();

  test('directories already there at the first start are adopted, not given as events', async () => {
    await makeSampleProposal(root, ['--runs', '2', '--trains', '3', '--with-proc']);
    const adopted: RunEvent[] = [];
    const w = watcher(root, known, adopted);
    await w.started;
    assert.deepEqual(adopted.map((e) => `r${e.run} ${e.kind}`).sort(), ['r1 proc', 'r1 raw', 'r2 proc', 'r2 raw']);
    assert.match(w.notices.join('\n'), /4 run directories were already there/);

    // New runs written by the generator: raw events, then proc events once their proc data comes.
    await makeSampleProposal(root, ['--runs', '2', '--first-run', '3', '--trains', '3']);
    await eventually('raw events of runs 3 and 4', () => w.events.length >= 2);
    assert.deepEqual([...w.events].sort(), ['r3 raw', 'r4 raw']);
    await makeSampleProposal(root, ['--runs', '2', '--first-run', '3', '--trains', '3', '--with-proc']);
    await eventually('proc events of runs 3 and 4', () => w.events.length >= 4);
    assert.deepEqual(w.events.slice(2).sort(), ['r3 proc', 'r4 proc']);
    await w.source.close();
    assert.equal(w.events.length, 4, 'nothing repeated');
  });

  test('a run whose copy is under way waits until the copy is complete', async () => {
    const w = watcher(root, known, null);
    await w.started;
    const source = path.join(root, 'raw', 'r0001');
    const [name] = readdirSync(source);
    assert.ok(name);
    const bytes = readFileSync(path.join(source, name));
    const copying = path.join(root, 'raw', 'r0005');
    mkdirSync(copying);
    const target = path.join(copying, name.replace('R0001', 'R0005'));
    writeFileSync(target, bytes.subarray(0, 1000));
    // A complete run written after it is given first.
    await makeSampleProposal(root, ['--runs', '1', '--first-run', '6', '--trains', '3']);
    await eventually('the raw event of run 6', () => w.events.includes('r6 raw'));
    assert.ok(!w.events.includes('r5 raw'), 'r5 is still being copied');
    writeFileSync(target, bytes);
    await eventually('the raw event of run 5', () => w.events.includes('r5 raw'));
    await w.source.close();
  });

  test('after a restart: nothing given twice, and runs that came meanwhile are given', async () => {
    // While no source runs, run 7 arrives with raw and proc data.
    await makeSampleProposal(root, ['--runs', '1', '--first-run', '7', '--trains', '3', '--with-proc']);
    const w = watcher(root, known, null);
    await w.started;
    await eventually('the events of run 7', () => w.events.length >= 2);
    assert.deepEqual(w.events, ['r7 raw', 'r7 proc']);
    await w.source.close();
  });

  test('the raw event of a run comes before its proc event', async () => {
    const alone = path.join(tmp.dir, 'proc-first');
    const w = watcher(alone, new Set(), null);
    await w.started;
    await makeSampleProposal(alone, ['--runs', '1', '--trains', '3', '--with-proc']);
    await eventually('both events', () => w.events.length >= 2);
    assert.deepEqual(w.events, ['r1 raw', 'r1 proc']);
    await w.source.close();
  });
});

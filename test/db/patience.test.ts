import assert from 'node:assert/strict';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { DatabaseBusyError } from '../../src/db/errors.js';
import { DatabasePatience } from '../../src/db/patience.js';
import { makeTempDir } from '../helpers/cli.js';

const tmp = makeTempDir('damnit-patience-');
after(() => tmp.cleanup());

/** Two connections to one file: `holder` takes the write lock, `writer` waits for it. */
function pair(name: string): { holder: Database.Database; writer: Database.Database; file: string } {
  const file = path.join(tmp.dir, `${name}.sqlite`);
  const holder = new Database(file);
  holder.exec('CREATE TABLE t (x)');
  return { holder, writer: new Database(file, { timeout: 50 }), file };
}

describe('DatabasePatience', () => {
  test('a write waits while another connection holds the lock, and says so once the wait is noticeable', async () => {
    const { holder, writer, file } = pair('waits');
    holder.exec('BEGIN IMMEDIATE');
    const said: string[] = [];
    const patience = new DatabasePatience({ file, limitMs: 60_000, onWait: (m) => said.push(m) });
    const written = patience.write(() => writer.prepare('INSERT INTO t VALUES (1)').run().changes);
    // Released once the waiting has been reported (after NOTICE_AFTER_MS).
    while (said.length === 0) await new Promise((r) => setTimeout(r, 50));
    holder.exec('COMMIT');
    assert.equal(await written, 1);
    assert.match(said[0] ?? '', new RegExp(`^waiting for ${file}: another process holds it locked \\(\\d+ s so far; giving up after 60 s\\)$`));
    assert.equal(said.length, 1);
    holder.close();
    writer.close();
  });

  test('gives up after the limit; later writes do not wait again; what was put aside is written at the end', async () => {
    const { holder, writer, file } = pair('gives-up');
    holder.exec('BEGIN IMMEDIATE');
    const patience = new DatabasePatience({ file, limitMs: 1000, onWait: () => undefined });
    const insert = (x: number) => () => writer.prepare('INSERT INTO t VALUES (?)').run(x);
    await assert.rejects(patience.write(insert(1), 'one'), (err: unknown) => {
      assert.ok(err instanceof DatabaseBusyError);
      assert.match(err.message, /stayed locked by another process for over 1 s; gave up \(raise the limit with 'amore-proto db-config --num db_busy_timeout SECONDS'\)/);
      return true;
    });
    assert.equal(patience.givenUp, true);
    let tries = 0;
    await assert.rejects(patience.write(() => {
      tries += 1;
      insert(2)();
    }, 'two'), DatabaseBusyError);
    assert.equal(tries, 1, 'tried once, without waiting again');
    assert.deepEqual(patience.retryDeferred(), { written: [], left: ['one', 'two'] });

    await assert.rejects(patience.write(insert(3), 'three'), DatabaseBusyError);
    holder.exec('COMMIT');
    assert.deepEqual(patience.retryDeferred(), { written: ['three'], left: [] });
    assert.deepEqual(writer.prepare('SELECT x FROM t').pluck().all(), [3]);
    holder.close();
    writer.close();
  });

  test('other errors pass through at once', async () => {
    const { holder, writer, file } = pair('other');
    const patience = new DatabasePatience({ file, limitMs: 60_000, onWait: () => undefined });
    await assert.rejects(patience.write(() => writer.exec('INSERT INTO nowhere VALUES (1)')), /no such table/);
    holder.close();
    writer.close();
  });
});

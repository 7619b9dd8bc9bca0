import assert from 'node:assert/strict';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { makeTempDir, runCli } from '../helpers/cli.js';
import { copyReferenceDb, inspect } from '../db/fixtures.js';

describe('amore-proto migrate', () => {
  let tmp: ReturnType<typeof makeTempDir>;
  beforeEach(() => {
    tmp = makeTempDir();
  });
  afterEach(() => tmp.cleanup());

  const formatVersion = (): unknown =>
    inspect(path.join(tmp.dir, 'runs.sqlite'), (conn) =>
      conn.prepare("SELECT value FROM metameta WHERE key = 'data_format_version'").pluck().get(),
    );

  it('upgrades the reference format-2 database and says what it did, then that nothing is left', async () => {
    copyReferenceDb(tmp.dir);
    const res = await runCli(['migrate'], { cwd: tmp.dir });
    assert.equal(res.code, 0, res.stderr);
    assert.equal(
      res.stdout,
      `Upgraded ${path.join(tmp.dir, 'runs.sqlite')} from data format 2 to 4:\n` +
        '  format 3: add the tags and variable_tags tables\n' +
        '  format 4: add the trigger deleting a tag when its last variable loses it\n',
    );
    assert.equal(formatVersion(), 4);
    const again = await runCli(['migrate'], { cwd: tmp.dir });
    assert.deepEqual(
      [again.code, again.stdout],
      [0, `${path.join(tmp.dir, 'runs.sqlite')} is already at data format 4; nothing to do\n`],
    );
  });

  it('applies each step once when several processes open an old database together', async () => {
    copyReferenceDb(tmp.dir);
    const rowsBefore = inspect(path.join(tmp.dir, 'runs.sqlite'), (conn) =>
      conn.prepare('SELECT count(*) FROM run_variables').pluck().get(),
    );
    const results = await Promise.all([1, 2, 3, 4].map(() => runCli(['migrate'], { cwd: tmp.dir })));
    for (const r of results) assert.equal(r.code, 0, r.stderr);
    const stepLines = results.flatMap((r) => r.stdout.split('\n').filter((l) => l.startsWith('  format ')));
    assert.deepEqual(stepLines.sort(), [
      '  format 3: add the tags and variable_tags tables',
      '  format 4: add the trigger deleting a tag when its last variable loses it',
    ]);
    assert.equal(formatVersion(), 4);
    assert.equal(
      inspect(path.join(tmp.dir, 'runs.sqlite'), (conn) => conn.prepare('SELECT count(*) FROM run_variables').pluck().get()),
      rowsBefore,
    );
  });

  it('refuses a database from a newer format, naming file and version', async () => {
    copyReferenceDb(tmp.dir);
    const conn = new Database(path.join(tmp.dir, 'runs.sqlite'));
    conn.prepare("UPDATE metameta SET value = 99 WHERE key = 'data_format_version'").run();
    conn.close();
    const res = await runCli(['migrate'], { cwd: tmp.dir });
    assert.equal(res.code, 1);
    assert.equal(res.stderr.split('\n').length, 2, res.stderr);
    assert.match(res.stderr, /^Error: cannot open .*runs\.sqlite: it is at data format 99, newer than the 4/);
    assert.equal(formatVersion(), 99);
  });

  it('outside a database directory: the not-a-database-directory error', async () => {
    const res = await runCli(['migrate'], { cwd: tmp.dir });
    assert.equal(res.code, 1);
    assert.match(res.stderr, /^Error: no runs\.sqlite in /);
  });

  it('has --help', async () => {
    const res = await runCli(['migrate', '--help'], { cwd: tmp.dir });
    assert.equal(res.code, 0);
    assert.match(res.stdout, /^usage: amore-proto migrate/);
  });
});

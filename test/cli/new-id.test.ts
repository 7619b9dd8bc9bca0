import assert from 'node:assert/strict';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { makeTempDir, runCli } from '../helpers/cli.js';
import { inspect } from '../db/fixtures.js';

describe('amore-proto new-id', () => {
  let tmp: ReturnType<typeof makeTempDir>;
  const dbId = (dir: string): unknown =>
    inspect(path.join(dir, 'runs.sqlite'), (conn) =>
      conn.prepare("SELECT value FROM metameta WHERE key = 'db_id'").pluck().get(),
    );

  beforeEach(async () => {
    tmp = makeTempDir();
    assert.equal((await runCli(['proposal', '1234'], { cwd: tmp.dir })).code, 0);
  });
  afterEach(() => tmp.cleanup());

  it('gives the database in the current directory a fresh db_id and prints it', async () => {
    const before = dbId(tmp.dir);
    const res = await runCli(['new-id'], { cwd: tmp.dir });
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /^[0-9a-f]{40}\n$/);
    assert.equal(dbId(tmp.dir), res.stdout.trim());
    assert.notEqual(dbId(tmp.dir), before);
  });

  it('takes the database directory as an argument', async () => {
    const elsewhere = makeTempDir();
    try {
      const res = await runCli(['new-id', tmp.dir], { cwd: elsewhere.dir });
      assert.equal(res.code, 0, res.stderr);
      assert.equal(dbId(tmp.dir), res.stdout.trim());
    } finally {
      elsewhere.cleanup();
    }
  });

  it('fails clearly for a directory without a database', async () => {
    const res = await runCli(['new-id', path.join(tmp.dir, 'nowhere')], { cwd: tmp.dir });
    assert.equal(res.code, 1);
    assert.match(res.stderr, /^Error: no runs\.sqlite in .*nowhere/);
  });

  it('has --help', async () => {
    const res = await runCli(['new-id', '--help'], { cwd: tmp.dir });
    assert.equal(res.code, 0);
    assert.match(res.stdout, /^usage: amore-proto new-id .*\[dir\]/);
  });
});

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { makeTempDir, runCli } from '../helpers/cli.js';
import { inspect } from '../db/fixtures.js';

describe('amore-proto proposal', () => {
  let tmp: ReturnType<typeof makeTempDir>;
  beforeEach(() => {
    tmp = makeTempDir();
  });
  afterEach(() => tmp.cleanup());

  const metameta = (): Record<string, { value: unknown; t: string }> =>
    inspect(path.join(tmp.dir, 'runs.sqlite'), (conn) =>
      Object.fromEntries(
        (conn.prepare('SELECT key, value, typeof(value) AS t FROM metameta').all() as { key: string; value: unknown; t: string }[]).map(
          (r) => [r.key, { value: r.value, t: r.t }],
        ),
      ),
    );

  it('creates a blank format-4 database for proposal N in the current directory', async () => {
    const res = await runCli(['proposal', '1234'], { cwd: tmp.dir });
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /^Created a blank database for proposal 1234 in .*runs\.sqlite\n$/);
    const meta = metameta();
    assert.deepEqual(meta.proposal, { value: 1234, t: 'integer' });
    assert.deepEqual(meta.data_format_version, { value: 4, t: 'integer' });
    assert.match(String(meta.db_id?.value), /^[0-9a-f]{40}$/);
    // The reference also writes damnit_python, the Python of its own backend: deliberately not
    // here (docs/context-file.md), so that the reference's backend fills in its own default.
    assert.deepEqual(Object.keys(meta).sort(), ['concurrent_jobs', 'data_format_version', 'db_id', 'proposal']);
  });

  it('prints the current number, says when nothing changes, and changes it', async () => {
    await runCli(['proposal', '1234'], { cwd: tmp.dir });
    const current = await runCli(['proposal'], { cwd: tmp.dir });
    assert.deepEqual([current.code, current.stdout], [0, 'Current proposal number: 1234\n']);

    const same = await runCli(['proposal', '1234'], { cwd: tmp.dir });
    assert.deepEqual([same.code, same.stdout], [0, 'No change - proposal 1234 already set\n']);

    const changed = await runCli(['proposal', '2002'], { cwd: tmp.dir });
    assert.deepEqual([changed.code, changed.stdout], [0, 'Changed proposal to 2002 (was 1234)\n']);
    assert.deepEqual(metameta().proposal, { value: 2002, t: 'integer' });
  });

  it('refuses a proposal that is not an integer with a usage error (exit 2)', async () => {
    const res = await runCli(['proposal', 'abc'], { cwd: tmp.dir });
    assert.equal(res.code, 2);
    assert.match(res.stderr, /error: .*invalid int value: 'abc'/);
    assert.equal(existsSync(path.join(tmp.dir, 'runs.sqlite')), false);
  });

  it('without N and without a database, says there is none', async () => {
    const res = await runCli(['proposal'], { cwd: tmp.dir });
    assert.equal(res.code, 1);
    assert.match(res.stderr, /^Error: no runs\.sqlite in .*: run this in a DAMNIT database directory/);
    assert.equal(existsSync(path.join(tmp.dir, 'runs.sqlite')), false);
  });

  it('has --help', async () => {
    const res = await runCli(['proposal', '--help'], { cwd: tmp.dir });
    assert.equal(res.code, 0);
    assert.match(res.stdout, /^usage: amore-proto proposal .*\[proposal\]/);
  });
});

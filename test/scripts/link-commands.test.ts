// scripts/link-commands.sh, which setup runs: both names on PATH, and npx finding them from a
// database directory instead of asking the npm registry.
import assert from 'node:assert/strict';
import { mkdirSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { makeTempDir, runCli } from '../helpers/cli.js';
import { CLI_PATH, REPO_ROOT } from '../helpers/paths.js';

const tmp = makeTempDir('damnit-link-');
after(() => tmp.cleanup());

describe('link-commands.sh', () => {
  const prefix = path.join(tmp.dir, 'prefix');
  const bin = path.join(prefix, 'bin');
  const db = path.join(tmp.dir, 'db');
  before(async () => {
    const linked = await execa('bash', [path.join(REPO_ROOT, 'scripts', 'link-commands.sh'), bin]);
    assert.match(linked.stdout, /Linked .*\/bin\/amore-proto ->/);
    mkdirSync(db);
    assert.equal((await runCli(['proposal', '1234'], { cwd: db })).code, 0);
  });

  test('links amore-proto and damnit to the built CLI', () => {
    for (const name of ['amore-proto', 'damnit']) assert.equal(readlinkSync(path.join(bin, name)), CLI_PATH);
  });

  test('on PATH, both names run; amore-proto with its note on stderr', async () => {
    const env = { PATH: `${bin}:${process.env.PATH}`, NO_COLOR: '1' };
    const damnit = await execa('damnit', ['proposal'], { cwd: db, env, reject: false });
    assert.deepEqual([damnit.exitCode, damnit.stdout, damnit.stderr], [0, 'Current proposal number: 1234', '']);
    const old = await execa('amore-proto', ['table'], { cwd: db, env, reject: false });
    assert.equal(old.exitCode, 0, old.stderr);
    assert.match(old.stderr, /^Warning: 'amore-proto' has been renamed to 'damnit'/);
  });

  test('npx amore-proto finds the link in the global bin directory, from a database directory', async () => {
    // --no: never install from the registry; the link must be found.
    const res = await execa('npx', ['--no', 'amore-proto', 'proposal'], {
      cwd: db,
      env: { npm_config_prefix: prefix, NO_COLOR: '1' },
      reject: false,
    });
    assert.equal(res.exitCode, 0, res.stderr);
    assert.equal(res.stdout, 'Current proposal number: 1234');
  });
});

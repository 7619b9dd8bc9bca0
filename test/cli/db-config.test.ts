import assert from 'node:assert/strict';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { execa } from 'execa';
import { makeTempDir, runCli } from '../helpers/cli.js';
import { CLI_PATH } from '../helpers/paths.js';
import { inspect } from '../db/fixtures.js';

describe('amore-proto db-config', () => {
  let tmp: ReturnType<typeof makeTempDir>;
  const run = (...args: string[]) => runCli(['db-config', ...args], { cwd: tmp.dir });
  const stored = (key: string): { value: unknown; t: string } | undefined =>
    inspect(path.join(tmp.dir, 'runs.sqlite'), (conn) =>
      conn.prepare('SELECT value, typeof(value) AS t FROM metameta WHERE key = ?').get(key) as
        | { value: unknown; t: string }
        | undefined,
    );

  beforeEach(async () => {
    tmp = makeTempDir();
    const created = await runCli(['proposal', '1234'], { cwd: tmp.dir });
    assert.equal(created.code, 0, created.stderr);
  });
  afterEach(() => tmp.cleanup());

  it('lists every key=value (Python repr of each value)', async () => {
    const res = await run();
    assert.equal(res.code, 0, res.stderr);
    const lines = res.stdout.trimEnd().split('\n');
    assert.ok(lines.includes('proposal=1234'), res.stdout);
    assert.ok(lines.includes('data_format_version=4'), res.stdout);
    assert.ok(lines.includes('concurrent_jobs=15'), res.stdout);
    assert.ok(lines.some((l) => /^db_id='[0-9a-f]{40}'$/.test(l)), res.stdout);
  });

  it('sets a text value, prints it back, and turns - into _ in the key', async () => {
    const set = await run('slurm-reservation', 'upex_001234');
    assert.deepEqual([set.code, set.stdout, set.stderr], [0, '', '']);
    assert.deepEqual(stored('slurm_reservation'), { value: 'upex_001234', t: 'text' });
    const get = await run('slurm_reservation');
    assert.deepEqual([get.code, get.stdout], [0, "'upex_001234'\n"]);
  });

  it('stores numbers with --num: int when integral, else float', async () => {
    assert.equal((await run('--num', 'concurrent_jobs', '30')).code, 0);
    assert.deepEqual(stored('concurrent_jobs'), { value: 30, t: 'integer' });
    assert.equal((await run('--num', 'run_timeout', '90.5')).code, 0);
    assert.deepEqual(stored('run_timeout'), { value: 90.5, t: 'real' });
    assert.equal((await run('run-timeout', '--num', '1e3')).code, 0);
    assert.deepEqual(stored('run_timeout'), { value: 1000, t: 'integer' });
    assert.deepEqual((await run('concurrent_jobs')).stdout, '30\n');
    // Without --num the value stays text, as in the reference.
    assert.equal((await run('concurrent_jobs', '8')).code, 0);
    assert.deepEqual(stored('concurrent_jobs'), { value: '8', t: 'text' });
  });

  it('refuses a non-number with --num and keeps the old value', async () => {
    const res = await run('--num', 'concurrent_jobs', 'many');
    assert.equal(res.code, 1);
    assert.equal(res.stderr, "Error: --num needs a finite number for concurrent_jobs, got 'many'\n");
    assert.deepEqual(stored('concurrent_jobs'), { value: 15, t: 'integer' });
  });

  it('deletes a key with -d/--delete (before or after the key)', async () => {
    await run('slurm_reservation', 'upex_001234');
    const del = await run('slurm_reservation', '--delete');
    assert.deepEqual([del.code, del.stdout, del.stderr], [0, '', '']);
    assert.equal(stored('slurm_reservation'), undefined);
    await run('slurm_partition', 'allgpu');
    assert.equal((await run('-d', 'slurm-partition')).code, 0);
    assert.equal(stored('slurm_partition'), undefined);
  });

  it('--delete without a key: Error: no key specified to delete', async () => {
    const res = await run('--delete');
    assert.deepEqual([res.code, res.stderr], [1, 'Error: no key specified to delete\n']);
  });

  it('a missing key: Error: key K not found (show or delete)', async () => {
    const show = await run('slurm_partition');
    assert.deepEqual([show.code, show.stdout, show.stderr], [1, '', 'Error: key slurm_partition not found\n']);
    const del = await run('-d', 'slurm_partition');
    assert.deepEqual([del.code, del.stderr], [1, 'Error: key slurm_partition not found\n']);
  });

  it('stores an unknown key with one warning line naming the close known key', async () => {
    const typo = await run('slurm_partiton', 'allgpu');
    assert.equal(typo.code, 0);
    assert.equal(typo.stderr, 'Warning: slurm_partiton is not a setting DAMNIT uses (did you mean slurm_partition?); stored anyway\n');
    assert.deepEqual(stored('slurm_partiton'), { value: 'allgpu', t: 'text' });

    const own = await run('beamtime_note', 'second shift');
    assert.equal(own.code, 0);
    assert.equal(own.stderr, 'Warning: beamtime_note is not a setting DAMNIT uses; stored anyway\n');

    const known = await run('slurm_time', '04:00:00');
    assert.deepEqual([known.code, known.stderr], [0, '']);
  });

  it('outside a database directory: the not-a-database-directory error', async () => {
    const empty = makeTempDir();
    try {
      const res = await runCli(['db-config'], { cwd: empty.dir });
      assert.equal(res.code, 1);
      assert.match(res.stderr, /^Error: no runs\.sqlite in .*amore-proto proposal <number>/);
    } finally {
      empty.cleanup();
    }
  });

  it('has --help listing the known settings and their defaults', async () => {
    const res = await run('--help');
    assert.equal(res.code, 0);
    assert.match(res.stdout, /^usage: amore-proto db-config \[options\] \[key\] \[value\]/);
    assert.match(res.stdout, /-d, --delete/);
    assert.match(res.stdout, /--num/);
    assert.match(res.stdout, /concurrent_jobs .*\[default: 15\]/);
    assert.match(res.stdout, /slurm_time .*\[default: 02:00:00\]/);
  });

  it('too many arguments is a usage error (exit 2)', async () => {
    const res = await run('a', 'b', 'c');
    assert.equal(res.code, 2);
    assert.equal(res.stderr, 'usage: amore-proto db-config [options] [key] [value]\namore-proto db-config: error: unrecognized arguments: c\n');
  });

  it('a reader that goes away ends it quietly, as it ends cat: exit 0, nothing on stderr', async () => {
    // `true` exits without reading: every write finds the pipe closed (EPIPE).
    for (const command of ['db-config -h', 'db-config', 'table', '--help']) {
      for (let attempt = 0; attempt < 3; attempt++) {
        const res = await execa('bash', ['-c', `"${process.execPath}" "${CLI_PATH}" ${command} | true; echo "exit=\${PIPESTATUS[0]}"`], {
          cwd: tmp.dir,
        });
        assert.equal(res.stdout, 'exit=0', `${command}: ${res.stderr}`);
        assert.equal(res.stderr, '', command);
      }
    }
  });
});

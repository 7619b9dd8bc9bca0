import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CONFIG_DEFAULTS,
  CONFIG_KEYS,
  closestConfigKey,
  findConfigKey,
  numberSetting,
  stringSetting,
} from '../../src/db/config-keys.js';
import { formatDuration, runTimeLimit, timeLimitReason } from '../../src/runs/time-limit.js';

const settings = (values: Record<string, string | number | bigint | null>) => ({ get: (key: string) => values[key] });

describe('configuration keys', () => {
  it('lists every key the backend reads, each described once', () => {
    const names = CONFIG_KEYS.map((k) => k.name);
    assert.equal(new Set(names).size, names.length);
    for (const name of [
      'db_id', 'data_format_version', 'proposal', 'context_python', 'slurm_partition', 'slurm_reservation',
      'concurrent_jobs', 'slurm_time', 'run_timeout', 'context_load_timeout', 'proposal_path', 'mymdc_source',
      'cluster_fallback_local',
    ]) {
      assert.ok(findConfigKey(name)?.description, name);
    }
  });

  it('has the documented defaults', () => {
    assert.equal(CONFIG_DEFAULTS.concurrent_jobs, 15);
    assert.equal(CONFIG_DEFAULTS.slurm_time, '02:00:00');
    assert.equal(CONFIG_DEFAULTS.run_timeout, null);
    assert.equal(CONFIG_DEFAULTS.context_load_timeout, 60);
    assert.equal(CONFIG_DEFAULTS.slurm_partition, null);
  });

  it('finds the key a typo was meant to be', () => {
    assert.equal(closestConfigKey('slurm_partiton'), 'slurm_partition');
    assert.equal(closestConfigKey('concurent_jobs'), 'concurrent_jobs');
    assert.equal(closestConfigKey('Slurm_Time'), 'slurm_time');
    assert.equal(closestConfigKey('my_own_note'), undefined);
  });

  it('reads numbers stored as numbers or as text, and defaults when unset', () => {
    assert.equal(numberSetting(settings({ context_load_timeout: 600 }), 'context_load_timeout'), 600);
    assert.equal(numberSetting(settings({ context_load_timeout: '600' }), 'context_load_timeout'), 600);
    assert.equal(numberSetting(settings({ context_load_timeout: '' }), 'context_load_timeout'), 60);
    assert.equal(numberSetting(settings({}), 'concurrent_jobs'), 15);
    assert.throws(
      () => numberSetting(settings({ context_load_timeout: 'soon' }), 'context_load_timeout'),
      /context_load_timeout is "soon", not a number.*db-config --num context_load_timeout 60/,
    );
  });

  // Issue 11: a run on this machine gets the run's Slurm time unless run_timeout says otherwise.
  it('takes the run time limit from run_timeout, else from slurm_time', () => {
    assert.deepEqual(runTimeLimit(settings({})), { ms: 7_200_000, setting: 'slurm_time' });
    assert.deepEqual(runTimeLimit(settings({ slurm_time: '05:00:00' })), { ms: 18_000_000, setting: 'slurm_time' });
    assert.deepEqual(runTimeLimit(settings({ slurm_time: '1-00:30' })), { ms: 88_200_000, setting: 'slurm_time' });
    assert.deepEqual(runTimeLimit(settings({ slurm_time: '90' })), { ms: 5_400_000, setting: 'slurm_time' });
    assert.deepEqual(runTimeLimit(settings({ run_timeout: '600', slurm_time: '05:00:00' })), { ms: 600_000, setting: 'run_timeout' });
    assert.deepEqual(runTimeLimit(settings({ run_timeout: '' })), { ms: 7_200_000, setting: 'slurm_time' });
    assert.throws(() => runTimeLimit(settings({ run_timeout: 'soon' })), /run_timeout is "soon", not a number/);
    assert.throws(() => runTimeLimit(settings({ slurm_time: 'soon' })), /slurm_time is "soon", not a Slurm time limit/);
    assert.equal(timeLimitReason({ ms: 7_200_000, setting: 'slurm_time' }), 'stopped after the run time limit of 2:00:00 (db-config slurm_time)');
    assert.equal(formatDuration(3_000), '0:00:03');
    assert.equal(formatDuration(1_500), '0:00:01.5');
    assert.equal(formatDuration(93_600_000), '1-02:00:00');
  });

  it('reads text settings with their defaults', () => {
    assert.equal(stringSetting(settings({}), 'slurm_time'), '02:00:00');
    assert.equal(stringSetting(settings({}), 'slurm_partition'), null);
    assert.equal(stringSetting(settings({ slurm_time: '01:00:00' }), 'slurm_time'), '01:00:00');
    assert.equal(stringSetting(settings({ proposal: 1234 }), 'proposal'), '1234');
  });
});

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
    assert.equal(CONFIG_DEFAULTS.run_timeout, 3600);
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
    assert.equal(numberSetting(settings({ run_timeout: 600 }), 'run_timeout'), 600);
    assert.equal(numberSetting(settings({ run_timeout: '600' }), 'run_timeout'), 600);
    assert.equal(numberSetting(settings({ run_timeout: '' }), 'run_timeout'), 3600);
    assert.equal(numberSetting(settings({}), 'concurrent_jobs'), 15);
    assert.throws(() => numberSetting(settings({ run_timeout: 'soon' }), 'run_timeout'), /run_timeout is "soon", not a number.*db-config --num run_timeout 3600/);
  });

  it('reads text settings with their defaults', () => {
    assert.equal(stringSetting(settings({}), 'slurm_time'), '02:00:00');
    assert.equal(stringSetting(settings({}), 'slurm_partition'), null);
    assert.equal(stringSetting(settings({ slurm_time: '01:00:00' }), 'slurm_time'), '01:00:00');
    assert.equal(stringSetting(settings({ proposal: 1234 }), 'proposal'), '1234');
  });
});

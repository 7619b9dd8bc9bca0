// The Slurm settings read at each run: process_on, the partition rule (reservation, then
// slurm_partition, then the user's default from the facility's netgroups), job resources.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { sbatchArgs } from '../../src/executors/slurm.js';
import {
  choosePartition,
  jobResources,
  netgroupHasUser,
  processPlace,
  settingProblem,
  slurmSettings,
  SlurmSettingError,
  userDefaultPartition,
} from '../../src/executors/slurm-settings.js';

const settings = (values: Record<string, string | number | null>) => ({ get: (key: string) => values[key] });

describe('the partition rule', () => {
  const facility = (groups: Record<string, string>) => (name: string) => groups[name] ?? null;

  test('a reservation wins, then slurm_partition, then the user\'s default', () => {
    const fallback = () => 'upex';
    assert.deepEqual(choosePartition(settings({ slurm_reservation: 'upex_001234', slurm_partition: 'allgpu' }), fallback), { reservation: 'upex_001234', partition: null });
    assert.deepEqual(choosePartition(settings({ slurm_partition: ' allgpu ', slurm_reservation: '' }), fallback), { reservation: null, partition: 'allgpu' });
    assert.deepEqual(choosePartition(settings({}), fallback), { reservation: null, partition: 'upex' });
    assert.deepEqual(slurmSettings(settings({}), () => null), { reservation: null, partition: null, time: '02:00:00' });
    assert.deepEqual(slurmSettings(settings({ slurm_time: '04:00:00' }), () => null).time, '04:00:00');
  });

  test("the user's default: exfel for staff, upex for users, all for others; Slurm's own away from the facility", () => {
    const groups = facility({ 'exfel-wgs-users': '(,alice,) (wgs1,bob,)', 'upex-users': '(-,carol,desy.de)' });
    assert.equal(userDefaultPartition('alice', groups), 'exfel');
    assert.equal(userDefaultPartition('bob', groups), 'exfel');
    assert.equal(userDefaultPartition('carol', groups), 'upex');
    assert.equal(userDefaultPartition('dave', groups), 'all');
    assert.equal(userDefaultPartition('alice', facility({})), null);
  });

  test('a netgroup triple with an empty user field takes every user', () => {
    assert.equal(netgroupHasUser('(host1,,)', 'anyone'), true);
    assert.equal(netgroupHasUser('(host1,alice,) (host2,bob,)', 'carol'), false);
    assert.equal(netgroupHasUser('', 'carol'), false);
  });
});

describe('process_on and job resources', () => {
  test('process_on: local unless set, case and spaces forgiven, anything else refused', () => {
    assert.equal(processPlace(settings({})), 'local');
    assert.equal(processPlace(settings({ process_on: ' Slurm ' })), 'slurm');
    assert.throws(() => processPlace(settings({ process_on: 'cloud' })), SlurmSettingError);
  });

  test('noncluster_cpus and noncluster_mem: the reference defaults, checked values', () => {
    assert.deepEqual(jobResources(settings({})), { cpus: 4, mem: '25G' });
    assert.deepEqual(jobResources(settings({ noncluster_cpus: '8', noncluster_mem: '50g' })), { cpus: 8, mem: '50G' });
    assert.deepEqual(jobResources(settings({ noncluster_mem: '4096' })), { cpus: 4, mem: '4096' });
    for (const mem of ['25 GB', '25GB', '0', '-1G', '', '1.5G']) {
      assert.throws(() => jobResources(settings({ noncluster_mem: mem })), SlurmSettingError, mem);
      assert.notEqual(settingProblem('noncluster_mem', mem), null, mem);
    }
    for (const cpus of ['0', 'four', '2.5', -1]) {
      assert.throws(() => jobResources(settings({ noncluster_cpus: cpus })), SlurmSettingError, String(cpus));
    }
    assert.equal(settingProblem('slurm_time', 'whatever'), null);
  });

  test('sbatch gets --cpus-per-task and --mem', () => {
    const args = sbatchArgs({ jobName: 'r1-p1-damnit', logPath: '/l', cpusPerTask: 4, mem: '25G', command: ['true'] }, '/s.sh');
    assert.deepEqual(args.slice(args.indexOf('--cpus-per-task'), args.indexOf('--cpus-per-task') + 4), ['--cpus-per-task', '4', '--mem', '25G']);
  });
});

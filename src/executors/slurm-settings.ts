/**
 * The database's settings for processing on Slurm (docs/slurm.md), read and checked each time
 * they are used, so that `db-config` takes effect at the next run without a restart: where runs
 * are processed (`process_on`), the partition rule, `slurm_time`, and the resources of a job
 * that processes a run (`noncluster_cpus`, `noncluster_mem`).
 */
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { numberSetting, stringSetting, type SettingsSource } from '../db/config-keys.js';
import { programName } from '../program-name.js';
import { SlurmError } from './slurm-errors.js';

/** Where runs are processed: here in warm workers, or in Slurm jobs. */
export const PROCESS_PLACES = ['local', 'slurm'] as const;
export type ProcessPlace = (typeof PROCESS_PLACES)[number];

/** What to do without Slurm when process_on is slurm. */
export const PROCESS_HERE_HINT =
  `; process_on is 'slurm': to process runs on this machine instead, set '${programName()} db-config process_on local' ` +
  `(or reprocess with '${programName()} reprocess --direct ...')`;

/** A Slurm setting with a value Slurm would not take, said before anything is submitted. */
export class SlurmSettingError extends SlurmError {
  constructor(message: string) {
    super(message);
    this.name = 'SlurmSettingError';
  }
}

/** The database's Slurm settings, the partition already chosen (see choosePartition). */
export interface SlurmSettings {
  partition: string | null;
  reservation: string | null;
  time: string | null;
}

/** Resources of a job that processes a run's non-cluster variables (sbatch --cpus-per-task, --mem). */
export interface JobResources {
  cpus: number;
  mem: string;
}

function text(settings: SettingsSource, key: 'slurm_partition' | 'slurm_reservation' | 'slurm_time'): string | null {
  const value = stringSetting(settings, key)?.trim();
  return value ? value : null;
}

/** `process_on`: 'local' unless set; anything else is refused with the values it may take. */
export function processPlace(settings: SettingsSource): ProcessPlace {
  const value = (stringSetting(settings, 'process_on') ?? 'local').trim().toLowerCase();
  if ((PROCESS_PLACES as readonly string[]).includes(value)) return value as ProcessPlace;
  throw new SlurmSettingError(
    `process_on is '${stringSetting(settings, 'process_on')}', which is not a place runs can be processed: ` +
      `set it with '${programName()} db-config process_on local' (this machine) or '... process_on slurm'`,
  );
}

/** Slurm's memory sizes: a whole number with an optional unit (megabytes without one). */
const MEMORY = /^[1-9]\d*[KMGT]?$/i;

/** The message for a `noncluster_mem` Slurm would refuse; null when it is fine. */
export function memoryProblem(value: string): string | null {
  if (MEMORY.test(value.trim())) return null;
  return (
    `noncluster_mem '${value}' is not a memory size Slurm accepts: give a whole number with an optional ` +
    `unit K, M, G or T (megabytes without one), e.g. '${programName()} db-config noncluster_mem 25G'`
  );
}

/** The message for a `noncluster_cpus` that is not a positive whole number; null when it is fine. */
export function cpusProblem(value: string | number): string | null {
  const n = Number(value);
  if (String(value).trim() !== '' && Number.isInteger(n) && n > 0) return null;
  return `noncluster_cpus '${value}' is not a number of CPU cores: set a whole number, e.g. '${programName()} db-config --num noncluster_cpus 4'`;
}

export function jobResources(settings: SettingsSource): JobResources {
  const mem = stringSetting(settings, 'noncluster_mem') ?? '25G';
  const memProblem = memoryProblem(mem);
  if (memProblem) throw new SlurmSettingError(memProblem);
  const cpusValue = settings.get('noncluster_cpus');
  if (cpusValue !== null && cpusValue !== undefined) {
    const problem = cpusProblem(typeof cpusValue === 'bigint' ? String(cpusValue) : cpusValue);
    if (problem) throw new SlurmSettingError(problem);
  }
  return { cpus: numberSetting(settings, 'noncluster_cpus'), mem: mem.trim().toUpperCase() };
}

/** Whether `user` is a member of a netgroup: the lookup answers with its (host,user,domain) triples. */
export type NetgroupLookup = (netgroup: string) => string | null;

/** `getent netgroup NAME`; null when the name service does not know the netgroup. */
function getentNetgroup(netgroup: string): string | null {
  try {
    return execFileSync('getent', ['netgroup', netgroup], { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return null;
  }
}

/** Whether `user` is in the triples `(host,user,domain)` getent printed (an empty user: anyone). */
export function netgroupHasUser(triples: string, user: string): boolean {
  for (const match of triples.matchAll(/\(\s*([^,()]*),\s*([^,()]*),\s*([^,()]*)\)/g)) {
    const member = (match[2] ?? '').trim();
    if (member === '' || member === user) return true;
  }
  return false;
}

/**
 * The user's default partition, as the facility assigns them: staff in netgroup
 * `exfel-wgs-users` use `exfel`, users in `upex-users` use `upex`, others `all`. Where neither
 * netgroup exists (not at the facility), null: Slurm's own default partition.
 */
export function userDefaultPartition(user: string, lookup: NetgroupLookup = getentNetgroup): string | null {
  const staff = lookup('exfel-wgs-users');
  if (staff !== null && netgroupHasUser(staff, user)) return 'exfel';
  const upex = lookup('upex-users');
  if (upex !== null && netgroupHasUser(upex, user)) return 'upex';
  return staff !== null || upex !== null ? 'all' : null;
}

let cachedDefault: { user: string; partition: string | null } | undefined;

/** userDefaultPartition for this process's user, asked once per process. */
function ownDefaultPartition(): string | null {
  const user = os.userInfo().username;
  if (cachedDefault?.user !== user) cachedDefault = { user, partition: userDefaultPartition(user) };
  return cachedDefault.partition;
}

/** The partition rule: a reservation wins (no partition passed), then slurm_partition, then the user's default. */
export function choosePartition(
  settings: SettingsSource,
  defaultPartition: () => string | null = ownDefaultPartition,
): { reservation: string | null; partition: string | null } {
  const reservation = text(settings, 'slurm_reservation');
  if (reservation) return { reservation, partition: null };
  return { reservation: null, partition: text(settings, 'slurm_partition') ?? defaultPartition() };
}

export function slurmSettings(
  settings: SettingsSource,
  defaultPartition: () => string | null = ownDefaultPartition,
): SlurmSettings {
  return { ...choosePartition(settings, defaultPartition), time: text(settings, 'slurm_time') };
}

/** Why `value` cannot be stored for `key` (one of the keys above); null when it can, or the key is not one of them. */
export function settingProblem(key: string, value: string | number | bigint): string | null {
  const text = String(value);
  switch (key) {
    case 'process_on':
      try {
        processPlace({ get: () => text });
        return null;
      } catch (err) {
        return (err as Error).message;
      }
    case 'noncluster_mem':
      return memoryProblem(text);
    case 'noncluster_cpus':
      return cpusProblem(text);
    default:
      return null;
  }
}

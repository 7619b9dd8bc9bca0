/**
 * The configuration keys this backend knows, kept in the `metameta` table and set with
 * `amore-proto db-config`. The one place their meaning and defaults are written down:
 * other modules read defaults from CONFIG_DEFAULTS rather than repeating them.
 */
import { programName } from '../program-name.js';

export interface ConfigKey {
  name: string;
  description: string;
  /** Used when the key is not set; null: no default (the feature is off or decided elsewhere). */
  default: string | number | null;
}

export const CONFIG_KEYS = [
  { name: 'db_id', description: 'random ID of this database (40 hex characters); renew it with new-id after copying a database', default: null },
  { name: 'data_format_version', description: 'format of runs.sqlite (4); changed only by upgrades', default: 4 },
  { name: 'proposal', description: 'proposal number whose runs this database records', default: null },
  { name: 'context_python', description: 'Python interpreter that loads and runs context.py', default: null },
  { name: 'process_on', description: "where runs are processed: 'local' (this machine, in warm workers) or 'slurm' (in Slurm jobs); read at each run", default: 'local' },
  { name: 'slurm_partition', description: "Slurm partition for jobs; unset: the user's default (exfel, upex or all at the facility, else Slurm's default)", default: null },
  { name: 'slurm_reservation', description: 'Slurm reservation for jobs; wins over slurm_partition', default: null },
  { name: 'concurrent_jobs', description: 'how many runs are processed at once (on Slurm: jobs running at once)', default: 15 },
  { name: 'noncluster_cpus', description: 'CPU cores of a Slurm job that processes a run (process_on slurm; --cpus-per-task)', default: 4 },
  { name: 'slurm_worker_jobs', description: 'when 1 (process_on slurm): runs go to long-lived Slurm jobs holding a warm worker, concurrent_jobs of them', default: 0 },
  { name: 'slurm_worker_host', description: "the address worker jobs connect back to; unset: this machine's name", default: null },
  { name: 'slurm_worker_time', description: 'time limit of a worker job (--time); unset: slurm_time', default: null },
  { name: 'slurm_worker_idle', description: 'seconds a worker job waits without a run before it ends', default: 300 },
  { name: 'slurm_worker_start', description: 'seconds a worker job may wait in the queue before runs go to one job each instead', default: 120 },
  { name: 'noncluster_mem', description: 'memory of a Slurm job that processes a run (process_on slurm; --mem), e.g. 25G', default: '25G' },
  { name: 'slurm_time', description: 'time limit of a Slurm job (--time)', default: '02:00:00' },
  { name: 'run_timeout', description: 'seconds the variables of one run may take before that run is stopped; unset: slurm_time', default: null },
  { name: 'run_memory_limit', description: "GB of memory the process running one run's variables may use (RLIMIT_DATA); a variable that needs more fails with MemoryError; 0 for no limit; unset: half of the machine's memory", default: null },
  { name: 'db_busy_timeout', description: 'seconds a command waits for runs.sqlite while another process holds it locked, before it gives up', default: 300 },
  { name: 'context_load_timeout', description: 'seconds loading context.py may take', default: 60 },
  { name: 'proposal_path', description: 'proposal root directory, overriding the one found by convention (three levels above this directory)', default: null },
  { name: 'mymdc_source', description: 'where mymdc# annotations get their values; unset: the facility metadata catalogue', default: null },
  { name: 'damnit_python', description: "the reference DAMNIT backend's own Python, for its jobs; not used or set by this backend", default: null },
  { name: 'update_broker', description: "Kafka broker(s) (host:port[,host:port]) that the GUI's update messages go to; 'none' sends none; AMORE_BROKER overrides it; unset: the facility broker", default: null },
  { name: 'cluster_fallback_local', description: 'when 1, cluster=True variables run on this machine if Slurm is not available', default: 0 },
] as const satisfies readonly ConfigKey[];

export type ConfigKeyName = (typeof CONFIG_KEYS)[number]['name'];

/** Keys a running backend reads again for every run (listener/live-settings.ts and where runs read them). */
export const LIVE_KEYS: readonly ConfigKeyName[] = [
  'context_python', 'run_timeout', 'concurrent_jobs', 'slurm_partition', 'slurm_reservation', 'slurm_time',
  'update_broker', 'mymdc_source', 'cluster_fallback_local', 'context_load_timeout',
];

type DefaultOf<K extends ConfigKeyName> = Extract<(typeof CONFIG_KEYS)[number], { name: K }>['default'];

export const CONFIG_DEFAULTS = Object.fromEntries(CONFIG_KEYS.map((k) => [k.name, k.default])) as {
  [K in ConfigKeyName]: DefaultOf<K>;
};

export function findConfigKey(name: string): ConfigKey | undefined {
  return CONFIG_KEYS.find((k) => k.name === name);
}

/** Edit distance counting a swap of neighbours as one edit (optimal string alignment). */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const at = (i: number, j: number): number => d[i]?.[j] ?? Number.POSITIVE_INFINITY;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, at(i - 2, j - 2) + 1);
      }
      (d[i] as number[])[j] = best;
    }
  }
  return at(a.length, b.length);
}

/** The known key an unknown one is probably a typo of, if any. */
export function closestConfigKey(name: string): string | undefined {
  let best: { name: string; distance: number } | undefined;
  for (const key of CONFIG_KEYS) {
    const distance = editDistance(name.toLowerCase(), key.name);
    if (distance <= 2 && (best === undefined || distance < best.distance)) best = { name: key.name, distance };
  }
  return best?.name;
}

/** What settings are read from: DamnitDb['metameta'] satisfies it. */
export interface SettingsSource {
  get(key: string): string | number | bigint | null | undefined;
}

type NumericKey = { [K in ConfigKeyName]: DefaultOf<K> extends number ? K : never }[ConfigKeyName];

/**
 * A numeric setting, or its default when unset. Text that is a number counts: users often
 * set `db-config run_timeout 600` without --num, which stores the text '600'.
 */
export function numberSetting(settings: SettingsSource, key: NumericKey): number {
  const value = settings.get(key);
  if (value === undefined || value === null || (typeof value === 'string' && value.trim() === '')) {
    return CONFIG_DEFAULTS[key];
  }
  const n = Number(value);
  if (!Number.isFinite(n)) {
    throw new Error(
      `setting ${key} is ${JSON.stringify(value)}, not a number: ` +
        `set it with '${programName()} db-config --num ${key} ${CONFIG_DEFAULTS[key]}'`,
    );
  }
  return n;
}

/** A text setting (a number is given as its decimal text), or its default when unset. */
export function stringSetting(settings: SettingsSource, key: ConfigKeyName): string | null {
  const value = settings.get(key);
  if (value === undefined || value === null) {
    const fallback = CONFIG_DEFAULTS[key];
    return fallback === null ? null : String(fallback);
  }
  return String(value);
}

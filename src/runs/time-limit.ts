/**
 * How long the variables of one run may take on this machine: `run_timeout` seconds when set,
 * else the run's Slurm time (`slurm_time`, 2 hours by default), the bound the reference gives
 * each of its runs as a Slurm job.
 */
import { CONFIG_DEFAULTS, type SettingsSource } from '../db/config-keys.js';
import { programName } from '../program-name.js';

export interface RunTimeLimit {
  ms: number;
  /** The setting it comes from, for messages. */
  setting: 'run_timeout' | 'slurm_time';
}

/** Seconds of a Slurm time: `M`, `M:S`, `H:M:S`, `D-H`, `D-H:M`, `D-H:M:S`; null if not one. */
export function slurmTimeSeconds(text: string): number | null {
  const match = /^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$/.exec(text.trim());
  if (!match) return null;
  const [, days, a, b, c] = match;
  const n = (part: string | undefined): number => (part === undefined ? 0 : Number(part));
  let hours = 0;
  let minutes: number;
  let seconds: number;
  if (days !== undefined) {
    // D-H, D-H:M, D-H:M:S
    hours = n(a);
    minutes = n(b);
    seconds = n(c);
  } else if (c !== undefined) {
    hours = n(a);
    minutes = n(b);
    seconds = n(c);
  } else {
    minutes = n(a);
    seconds = n(b);
  }
  return ((n(days) * 24 + hours) * 60 + minutes) * 60 + seconds;
}

export function runTimeLimit(settings: SettingsSource): RunTimeLimit {
  const timeout = settings.get('run_timeout');
  if (timeout !== undefined && timeout !== null && !(typeof timeout === 'string' && timeout.trim() === '')) {
    const seconds = Number(timeout);
    if (!Number.isFinite(seconds)) {
      throw new Error(
        `setting run_timeout is ${JSON.stringify(timeout)}, not a number: ` +
          `set it with '${programName()} db-config --num run_timeout 3600', or unset it to use slurm_time`,
      );
    }
    return { ms: seconds * 1000, setting: 'run_timeout' };
  }
  const slurm = settings.get('slurm_time');
  const text = slurm === undefined || slurm === null || String(slurm).trim() === '' ? CONFIG_DEFAULTS.slurm_time : String(slurm);
  const seconds = slurmTimeSeconds(text);
  if (seconds === null) {
    throw new Error(
      `setting slurm_time is ${JSON.stringify(text)}, not a Slurm time limit (HH:MM:SS): ` +
        `set it with '${programName()} db-config slurm_time 02:00:00'`,
    );
  }
  return { ms: seconds * 1000, setting: 'slurm_time' };
}

/** `2:00:00`, `0:00:03`, `1-02:00:00`: a duration as Slurm writes time limits. */
export function formatDuration(ms: number): string {
  const total = ms / 1000;
  const days = Math.floor(total / 86_400);
  const hours = Math.floor((total % 86_400) / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = total % 60;
  const two = (n: number): string => String(n).padStart(2, '0');
  const secondsText = Number.isInteger(seconds) ? two(seconds) : seconds.toFixed(1).padStart(4, '0');
  const clock = `${two(minutes)}:${secondsText}`;
  return days > 0 ? `${days}-${two(hours)}:${clock}` : `${hours}:${clock}`;
}

/** Why a run was stopped at its time limit: the interrupted variable's error, the run's reason. */
export function timeLimitReason(limit: RunTimeLimit): string {
  return `stopped after the run time limit of ${formatDuration(limit.ms)} (db-config ${limit.setting})`;
}

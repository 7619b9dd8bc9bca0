/**
 * Slurm's job states and its records of jobs, as squeue, sacct and scontrol print them (slurm.ts).
 */

/** A job state after which Slurm will not run the job again by itself. */
export const TERMINAL_STATES = [
  'COMPLETED',
  'FAILED',
  'CANCELLED',
  'TIMEOUT',
  'NODE_FAIL',
  'OUT_OF_MEMORY',
  'BOOT_FAIL',
  'DEADLINE',
  'PREEMPTED',
] as const;
export type TerminalState = (typeof TERMINAL_STATES)[number];

/** What a followed job ended as; UNKNOWN when Slurm no longer knows the job at all. */
export type FinalState = TerminalState | 'UNKNOWN';

export interface JobRecord {
  /** `<id>` for a job, `<array id>_<index>` for an array task. */
  jobId: string;
  state: string;
  /** The job's exit status; null when Slurm has none (yet). */
  exitCode: number | null;
  /** The signal that ended it, if one did. */
  signal: number | null;
  /** Slurm's reason, e.g. NonZeroExitCode, TimeLimit; null when it gave none. */
  reason: string | null;
}

export function isTerminalState(state: string): state is TerminalState {
  return (TERMINAL_STATES as readonly string[]).includes(state);
}

/** `1:0` (exit code 1, no signal), `0:15` (killed by signal 15). */
function parseExitCode(text: string | undefined): { exitCode: number | null; signal: number | null } {
  const match = /^(\d+):(\d+)$/.exec(text ?? '');
  if (!match) return { exitCode: null, signal: null };
  const signal = Number(match[2]);
  return { exitCode: Number(match[1]), signal: signal === 0 ? null : signal };
}

/** sacct writes `CANCELLED by 0`; squeue and scontrol write the bare state. */
function normaliseState(state: string): string {
  return state.trim().split(/\s+/)[0]?.replace(/\+$/, '') ?? '';
}

/** Parses `squeue --noheader --array --format=%i|%T|%r` output. */
export function parseSqueue(stdout: string): JobRecord[] {
  const records: JobRecord[] = [];
  for (const line of stdout.split('\n')) {
    const [jobId, state, reason] = line.trim().split('|');
    if (!jobId || !state) continue;
    records.push({
      jobId,
      state: normaliseState(state),
      exitCode: null,
      signal: null,
      reason: reason && reason !== 'None' ? reason : null,
    });
  }
  return records;
}

/** Parses `sacct --noheader --parsable2 --allocations --format=JobID,State,ExitCode` output. */
export function parseSacct(stdout: string): JobRecord[] {
  const records: JobRecord[] = [];
  for (const line of stdout.split('\n')) {
    const [jobId, state, exit] = line.trim().split('|');
    if (!jobId || !state) continue;
    records.push({ jobId, state: normaliseState(state), ...parseExitCode(exit), reason: null });
  }
  return records;
}

/**
 * Parses `scontrol --oneliner show job` output: one record per job or array task. A record's
 * Command field may hold any text, even line breaks, so records start only at a line that begins
 * with `JobId=<digits> `, and the fields read here (which scontrol prints before Command) are
 * taken at their first occurrence.
 */
export function parseScontrolJobs(stdout: string): JobRecord[] {
  const records: JobRecord[] = [];
  for (const text of stdout.split(/\n(?=JobId=\d+ )/)) {
    const field = (name: string): string | undefined =>
      new RegExp(`(?:^| )${name}=(\\S*)`).exec(text)?.[1];
    const id = field('JobId');
    const state = field('JobState');
    if (!id || !state) continue;
    const arrayJobId = field('ArrayJobId');
    const arrayTaskId = field('ArrayTaskId');
    const jobId = arrayJobId && arrayTaskId && /^\d+$/.test(arrayTaskId) ? `${arrayJobId}_${arrayTaskId}` : id;
    const reason = field('Reason');
    records.push({
      jobId,
      state: normaliseState(state),
      ...parseExitCode(field('ExitCode')),
      reason: reason && reason !== 'None' ? reason : null,
    });
  }
  return records;
}

/**
 * The cluster part of a run (contract section 6, docs/slurm.md). A run's `cluster=True`
 * variables (and those promoted to cluster) run in a Slurm job `r<R>-p<P>-damnit`, submitted
 * once the local part has finished and been recorded, so that only one process at a time
 * writes the run's HDF5 file. The orchestrator follows the job and records its results: it
 * stays the only writer of runs.sqlite. Without Slurm, the cluster variables fail with a clear
 * error, or run on this machine when `cluster_fallback_local` is set.
 *
 * Also `reprocess --cluster`: every run as a task of one Slurm array job, each task's results
 * recorded as soon as it ends.
 */
import type { VariableResultMessage } from '../context/protocol.js';
import { numberSetting } from '../db/config-keys.js';
import type { DamnitDb } from '../db/database.js';
import type { OutputSink, RunEnvironment, RunExecutor } from '../executors/executor.js';
import { SlurmError, SlurmUnavailableError, type FinalState } from '../executors/slurm.js';
import {
  runArrayJob,
  runClusterJob,
  type SlurmRunOptions,
  type SlurmRunResult,
} from '../executors/slurm-run.js';
import { jobResources, slurmSettings } from '../executors/slurm-settings.js';
import { FreshProcessExecutor } from '../executors/local.js';
import { loadRunEnvironment } from './run-environment.js';
import { RunRecorder } from './run-recorder.js';
import type { RunOutcome, RunRequest } from './run-request.js';
import { nameList, plural } from '../text.js';
import { programName } from '../program-name.js';

/** How the cluster variables of a run went. */
export type ClusterPart =
  | {
      ok: true;
      /** `slurm`: in a job; `local`: on this machine, Slurm being unavailable (cluster_fallback_local). */
      where: 'slurm' | 'local';
      variables: VariableResultMessage[];
      startTime: number | null;
      jobId: string | null;
      logPath: string | null;
    }
  | {
      ok: false;
      /** One line: what happened, with the job's state and its log file when there is one. */
      reason: string;
      detail?: string;
      jobId: string | null;
      state: FinalState | null;
      logPath: string | null;
    };

/** A run's outcome, local and cluster parts together: `ok` only if both went well. */
export type ProcessedRun = RunOutcome & { cluster?: ClusterPart };

export interface ClusterDeps {
  db: DamnitDb;
  /** Runs the cluster variables here when Slurm is unavailable and cluster_fallback_local is set. */
  executor: RunExecutor;
  /** The settings the run was started with; read from the database when not given. */
  env?: RunEnvironment;
  onOutput?: OutputSink;
  /** Told when a job has been submitted, e.g. to log it. */
  onClusterJob?: (jobId: string, logPath: string) => void;
  /** Cancels the part: its Slurm job is cancelled, or its local run stopped. */
  signal?: AbortSignal;
  /** Told once the cluster part's results are recorded. */
  onRecorded?: (results: { variables: VariableResultMessage[]; startTime: number | null }) => void;
}

const NO_SLURM_HINT =
  `; to run cluster variables on this machine instead, set '${programName()} db-config --num cluster_fallback_local 1'`;

/** Whether cluster_fallback_local is on (any non-zero number). */
function fallbackLocal(db: DamnitDb): boolean {
  return numberSetting(db.metameta, 'cluster_fallback_local') !== 0;
}

function okPart(outcome: Extract<RunOutcome, { ok: true }>, where: 'slurm' | 'local', job?: SlurmRunResult): ClusterPart {
  return {
    ok: true,
    where,
    variables: outcome.variables,
    startTime: outcome.startTime,
    jobId: job?.jobId ?? null,
    logPath: job?.logPath ?? null,
  };
}

/**
 * Computes the cluster variables of `req` (its `cluster: 'only'` part) in a Slurm job, or
 * here when Slurm is unavailable and the database allows it, and records their results.
 * Never throws for Slurm's refusals or failed jobs: those are the part's `reason`.
 */
export async function runClusterPart(req: RunRequest, deps: ClusterDeps): Promise<ClusterPart> {
  const env = deps.env ?? (await loadRunEnvironment(deps.db.dir, deps.db));
  const only: RunRequest = { ...req, cluster: 'only' };
  const record = (outcome: Extract<RunOutcome, { ok: true }>): void => {
    deps.db.recordRunResults(req.proposal, req.run, { startTime: outcome.startTime, variables: outcome.variables });
    deps.onRecorded?.(outcome);
  };
  let job: SlurmRunResult;
  try {
    job = await runClusterJob(only, env, {
      settings: slurmSettings(deps.db.metameta),
      onSubmitted: deps.onClusterJob,
      signal: deps.signal,
    });
  } catch (err) {
    if (deps.signal?.aborted) return { ok: false, reason: String(deps.signal.reason), jobId: null, state: 'CANCELLED', logPath: null };
    if (err instanceof SlurmUnavailableError && fallbackLocal(deps.db)) {
      // On this machine, each variable is recorded as it is computed, as processRun does.
      const recorder = new RunRecorder(deps.db, req);
      const outcome = await deps.executor.execute(only, deps.onOutput, { onVariable: recorder.add, signal: deps.signal });
      if (!outcome.ok) {
        await recorder.finish(outcome.variables ?? []);
        return { ...outcome, jobId: null, state: null, logPath: null };
      }
      await recorder.finish(outcome.variables, outcome.startTime);
      deps.onRecorded?.(outcome);
      return okPart(outcome, 'local');
    }
    if (!(err instanceof SlurmError)) throw err;
    const hint = err instanceof SlurmUnavailableError ? NO_SLURM_HINT : '';
    return { ok: false, reason: `${err.message}${hint}`, jobId: null, state: null, logPath: null };
  }
  if (!job.outcome.ok) {
    return { ...job.outcome, jobId: job.jobId, state: job.state, logPath: job.logPath };
  }
  record(job.outcome);
  return okPart(job.outcome, 'slurm', job);
}

/** The whole run's outcome once its cluster part is known. */
export function withClusterPart(local: Extract<RunOutcome, { ok: true }>, part: ClusterPart): ProcessedRun {
  if (!part.ok) {
    const recorded = `${plural(local.variables.length, 'variable')} recorded`;
    return {
      ok: false,
      reason: `${recorded}, but the cluster variables ${nameList(local.clusterLeftOut)} were not computed: ${part.reason}`,
      detail: part.detail,
      cluster: part,
    };
  }
  // A cluster job recomputes the local variables it depends on: its (later) results count.
  const fromCluster = new Set(part.variables.map((v) => v.name));
  return {
    ...local,
    startTime: part.startTime ?? local.startTime,
    variables: [...local.variables.filter((v) => !fromCluster.has(v.name)), ...part.variables],
    cluster: part,
  };
}

export interface ArrayReprocessDeps {
  db: DamnitDb;
  env: RunEnvironment;
  /** At most this many tasks run at once (`concurrent_jobs`). */
  maxConcurrent: number;
  /**
   * process_on slurm: tasks get `noncluster_cpus`/`noncluster_mem` and log to process_logs/, and
   * a run's cluster variables get their own job once its task is recorded, as in the reference.
   * Otherwise (`reprocess --cluster`) each task computes the cluster variables too.
   */
  processOnSlurm?: boolean;
  /** Runs cluster variables here when Slurm is gone meanwhile and cluster_fallback_local is set. */
  executor?: RunExecutor;
  /** Stops following: the array is cancelled. */
  signal?: AbortSignal;
  onSubmitted?: (jobId: string) => void;
  onStarted?: (run: number) => void;
  onClusterJob?: (run: number, jobId: string, logPath: string) => void;
  /** Each run once it is done (cluster part included), its results already recorded when it went well. */
  onFinished: (run: number, outcome: ProcessedRun, task: SlurmRunResult) => void;
}

/**
 * `reprocess --cluster` and `reprocess` with process_on slurm: the runs as one Slurm array job.
 * Resolves with the array's job id once every run is recorded or reported.
 */
export async function reprocessAsArray(reqs: readonly RunRequest[], deps: ArrayReprocessDeps): Promise<string> {
  const ownClusterJobs = deps.processOnSlurm === true;
  const opts: SlurmRunOptions & { maxConcurrent: number; logs: 'slurm' | 'process' } = {
    settings: slurmSettings(deps.db.metameta),
    resources: ownClusterJobs ? jobResources(deps.db.metameta) : undefined,
    logs: ownClusterJobs ? 'process' : 'slurm',
    signal: deps.signal,
    maxConcurrent: deps.maxConcurrent,
  };
  const clusterParts = new Set<Promise<void>>();
  const requestOf = (run: number): RunRequest => reqs.find((r) => r.run === run) ?? (reqs[0] as RunRequest);
  const jobId = await runArrayJob(
    reqs.map((req) => ({ ...req, cluster: ownClusterJobs ? 'exclude' : 'include' })),
    deps.env,
    opts,
    {
      onSubmitted: deps.onSubmitted,
      onStarted: deps.onStarted,
      onFinished: (task) => {
        const { outcome } = task;
        const req = requestOf(task.run);
        if (!outcome.ok) {
          deps.onFinished(task.run, outcome, task);
          return;
        }
        deps.db.recordRunResults(req.proposal, task.run, { startTime: outcome.startTime, variables: outcome.variables });
        if (outcome.clusterLeftOut.length === 0 || !ownClusterJobs) {
          deps.onFinished(task.run, outcome, task);
          return;
        }
        const part = runClusterPart(req, {
          db: deps.db,
          env: deps.env,
          executor: deps.executor ?? new FreshProcessExecutor(deps.env),
          onClusterJob: (id, logPath) => deps.onClusterJob?.(task.run, id, logPath),
        }).then((p) => deps.onFinished(task.run, withClusterPart(outcome, p), task));
        clusterParts.add(part);
        void part.finally(() => clusterParts.delete(part));
      },
    },
  );
  await Promise.all(clusterParts);
  return jobId;
}

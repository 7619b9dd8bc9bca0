/**
 * What DAMNIT's GUI hears of the backend's jobs (updates/), in the reference's order: PENDING
 * when a job is queued; before it runs, the variables (the reference sends them before every
 * processing) and RUNNING under the same processing id; a PENDING Slurm job for its cluster
 * variables; processing_finished for each once it has ended. With process_on slurm, the run's
 * own Slurm job is announced under the queued id instead: PENDING with its job id, RUNNING on
 * its node, finished.
 */
import type { VariableInfo } from '../context/protocol.js';
import type { SlurmJobEvent } from '../executors/slurm-run.js';
import type { EventKind } from './events.js';
import type { BrokerChoice } from '../updates/broker-choice.js';
import type { GuiUpdates, ProcessingOf } from '../updates/gui-updates.js';

export interface JobAnnouncement {
  clusterJob: (jobId: string) => void;
  localDone: () => void;
  clusterDone: () => void;
}

interface JobOf {
  proposal: number;
  run: number;
  kind: EventKind;
}

export class JobAnnouncer {
  /** Processing ids of queued jobs (`<run>/<kind>`), as the GUI knows them. */
  private readonly queued = new Map<string, string>();
  /** process_on slurm: the processing of each run whose job is on its way, by run. */
  private readonly slurm = new Map<number, { id: string; of: ProcessingOf; ended: boolean }>();

  constructor(
    private readonly updates: GuiUpdates | undefined,
    /** The broker as the settings say now (read for every job). */
    private readonly broker: () => BrokerChoice,
  ) {}

  /** A job queued (or queued again). */
  jobQueued(job: JobOf): void {
    if (!this.updates) return;
    const key = `${job.run}/${job.kind}`;
    this.queued.set(key, this.updates.processingQueued({ proposal: job.proposal, run: job.run, data: job.kind }, this.queued.get(key)));
  }

  /** A queued job that will not run (cancelled, or its settings are invalid): finished for the GUI. */
  jobDropped(job: Pick<JobOf, 'run' | 'kind'>): void {
    const key = `${job.run}/${job.kind}`;
    const id = this.queued.get(key);
    this.queued.delete(key);
    if (id !== undefined) this.updates?.processingFinished(id);
  }

  /** A job starting; null when no updates are sent. */
  jobStarting(job: JobOf, variables: readonly VariableInfo[] | null, inSlurm: boolean): JobAnnouncement | null {
    const updates = this.updates;
    if (!updates) return null;
    updates.useBroker(this.broker());
    if (variables) updates.variablesSet(variables);
    const key = `${job.run}/${job.kind}`;
    const of = { proposal: job.proposal, run: job.run, data: job.kind };
    const queuedId = this.queued.get(key);
    this.queued.delete(key);
    const clusterJobs: string[] = [];
    const cluster = {
      clusterJob: (jobId: string) => clusterJobs.push(updates.processingSubmitted(of, { cluster: null, jobId })),
      clusterDone: () => {
        for (const id of clusterJobs) updates.processingFinished(id);
      },
    };
    if (inSlurm) {
      // The run's own Slurm job says when it runs where (slurmJobEvent), under the queued id.
      const entry = { id: queuedId ?? updates.processingQueued(of), of, ended: false };
      this.slurm.set(job.run, entry);
      return {
        ...cluster,
        localDone: () => {
          this.slurm.delete(job.run);
          if (!entry.ended) updates.processingFinished(entry.id);
        },
      };
    }
    const localId = updates.processingRunning(of, { processingId: queuedId });
    return { ...cluster, localDone: () => updates.processingFinished(localId) };
  }

  /** A run's Slurm job (process_on slurm): PENDING with its id, RUNNING on its node, finished. */
  slurmJobEvent(event: SlurmJobEvent): void {
    const entry = this.slurm.get(event.run);
    const updates = this.updates;
    if (!entry || !updates) return;
    const slurm = { cluster: null, jobId: event.jobId };
    if (event.phase === 'submitted') updates.processingSubmitted(entry.of, slurm, entry.id);
    else if (event.phase === 'started') {
      updates.processingRunning(entry.of, { processingId: entry.id, slurm, who: { hostname: event.host ?? '', username: event.user } });
    } else {
      entry.ended = true;
      updates.processingFinished(entry.id);
    }
  }
}

/**
 * Records a run's results in runs.sqlite as they come: each variable once the run has staged
 * it for its HDF5 file, so that a run stopped midway loses nothing it finished. Results that
 * arrive together (a fast run sends several in one read) go in one transaction, so a quick run
 * costs about one write, as before. Writes wait for a locked database through DatabasePatience.
 */
import type { VariableResultMessage } from '../context/protocol.js';
import type { DamnitDb } from '../db/database.js';
import type { DatabasePatience } from '../db/patience.js';
import { describeRun, type RunRequest } from './run-request.js';

export class RunRecorder {
  private pending: VariableResultMessage[] = [];
  private startTime: number | null = null;
  private readonly recorded = new Set<VariableResultMessage>();
  private chain: Promise<void> = Promise.resolve();
  private scheduled = false;
  private failure: unknown;

  constructor(
    private readonly db: DamnitDb,
    private readonly req: Pick<RunRequest, 'proposal' | 'run'>,
    private readonly patience?: DatabasePatience,
  ) {}

  /** A variable's result, recorded at the next turn of the event loop. */
  readonly add = (result: VariableResultMessage): void => {
    if (this.recorded.has(result)) return;
    this.recorded.add(result);
    this.pending.push(result);
    this.schedule();
  };

  /**
   * Records what is still to record (`results` not yet added, the run's start time) and waits
   * for every write; throws the first write's failure (DatabaseBusyError: kept for the
   * command's retry at its end).
   */
  async finish(results: readonly VariableResultMessage[] = [], startTime: number | null = null): Promise<void> {
    for (const result of results) this.add(result);
    if (startTime !== null) {
      this.startTime = startTime;
      this.schedule();
    }
    await this.chain;
    if (this.failure !== undefined) throw this.failure;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    this.chain = this.chain.then(() => new Promise<void>((resolve) => setImmediate(resolve))).then(() => this.flush());
  }

  private async flush(): Promise<void> {
    this.scheduled = false;
    const variables = this.pending.splice(0);
    const startTime = this.startTime;
    this.startTime = null;
    if (variables.length === 0 && startTime === null) return;
    const write = (): void => this.db.recordRunResults(this.req.proposal, this.req.run, { startTime, variables });
    try {
      if (this.patience) await this.patience.write(write, describeRun(this.req));
      else write();
    } catch (err) {
      this.failure ??= err;
    }
  }
}

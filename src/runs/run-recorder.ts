/**
 * Records a run's results in runs.sqlite as they come: each variable once the run has staged
 * it for its HDF5 file, so that a run stopped midway loses nothing it finished. Results that
 * arrive within BATCH_MS of each other go in one transaction (each costs the journal's fsyncs),
 * so a quick run costs one write, as before. Writes wait for a locked database through
 * DatabasePatience.
 */
import type { VariableResultMessage } from '../context/protocol.js';
import type { DamnitDb } from '../db/database.js';
import type { DatabasePatience } from '../db/patience.js';
import { describeRun, type RunRequest } from './run-request.js';

/** How long a result waits for others to share its transaction. */
const BATCH_MS = 100;

export class RunRecorder {
  private pending: VariableResultMessage[] = [];
  private startTime: number | null = null;
  private readonly recorded = new Set<VariableResultMessage>();
  private chain: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private failure: unknown;

  constructor(
    private readonly db: DamnitDb,
    private readonly req: Pick<RunRequest, 'proposal' | 'run'>,
    private readonly patience?: DatabasePatience,
  ) {}

  /** A variable's result, recorded within BATCH_MS. */
  readonly add = (result: VariableResultMessage): void => {
    if (this.recorded.has(result)) return;
    this.recorded.add(result);
    this.pending.push(result);
    this.schedule(BATCH_MS);
  };

  /**
   * Records what is still to record (`results` not yet added, the run's start time) and waits
   * for every write; throws the first write's failure (DatabaseBusyError: kept for the
   * command's retry at its end).
   */
  async finish(results: readonly VariableResultMessage[] = [], startTime: number | null = null): Promise<void> {
    for (const result of results) this.add(result);
    if (startTime !== null) this.startTime = startTime;
    this.schedule(0);
    await this.chain;
    if (this.failure !== undefined) throw this.failure;
  }

  /** A write of what is pending after `delayMs` (0: now, taking over a later one). */
  private schedule(delayMs: number): void {
    if (this.timer !== undefined) {
      if (delayMs > 0) return;
      clearTimeout(this.timer);
    }
    const write = (): void => {
      this.timer = undefined;
      this.chain = this.chain.then(() => this.flush());
    };
    if (delayMs > 0) this.timer = setTimeout(write, delayMs);
    else write();
  }

  private async flush(): Promise<void> {
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

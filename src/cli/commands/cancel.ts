import { setTimeout as sleep } from 'node:timers/promises';
import type Database from 'better-sqlite3';
import type { Command } from 'commander';
import { requireDatabaseDir } from '../../database-dir.js';
import { programName } from '../../program-name.js';
import type { CancelAck } from '../../scheduler/cancel-requests.js';
import { CliError, UsageError } from '../errors.js';

/** How long `cancel` waits for the processes watching the database to answer (they look twice a second). */
const ANSWER_WAIT_MS = 10_000;
/** How often it looks for their answers. */
const ANSWER_POLL_MS = 250;

/**
 * `cancel RUN... | --all`: asks every backend and reprocess of this database to stop the runs'
 * queued or running processing (scheduler/cancel-requests.ts), and says what each stopped.
 */
export function register(program: Command): void {
  program
    .command('cancel')
    .description('Stop the queued or running processing of runs, by the backend or a reprocess (local runs and their Slurm jobs)')
    .argument('[run...]', 'run numbers')
    .option('--all', 'every run queued or running')
    .action(async (runArgs: string[], opts: { all?: boolean }) => {
      if (opts.all && runArgs.length > 0) throw new UsageError('give run numbers or --all, not both');
      if (!opts.all && runArgs.length === 0) throw new UsageError('give the run numbers to cancel, or --all');
      const bad = runArgs.find((a) => !/^\d+$/.test(a));
      if (bad !== undefined) throw new UsageError(`Run numbers must be integers (got '${bad}')`);
      const dir = requireDatabaseDir();
      const { openDatabase } = await import('../../db/database.js');
      const { liveWatchers, requestCancel, requester } = await import('../../scheduler/cancel-requests.js');
      const db = openDatabase(dir);
      try {
        const proposal = Number(db.metameta.get('proposal') ?? Number.NaN);
        if (!Number.isInteger(proposal)) throw new CliError(`no proposal number set: set one with '${programName()} proposal N'`);
        const runs = opts.all ? [null] : [...new Set(runArgs.map(Number))].sort((a, b) => a - b);
        const ids = requestCancel(db.connection, proposal, runs, requester());
        const watchers = liveWatchers(db.connection);
        const acks = await answers(db.connection, ids, watchers);
        let nothing = 0;
        for (const [i, run] of runs.entries()) {
          const stopped = acks.filter((a) => a.requestId === ids[i] && a.what !== '');
          if (stopped.length === 0) {
            nothing += 1;
            const who = watchers.length === 0 ? ' (no backend or reprocess is running for this database)' : '';
            console.log(`${run === null ? 'all runs' : `r${run}`}: nothing queued or running to cancel${who}`);
          }
          for (const a of stopped) console.log(`r${a.run}: ${a.what}`);
        }
        if (nothing > 0) process.exitCode = 1;
      } finally {
        db.close();
      }
    });
}

/** Waits until every live watcher has answered every request (or ANSWER_WAIT_MS has passed). */
async function answers(conn: Database.Database, ids: number[], watchers: string[]): Promise<CancelAck[]> {
  const { cancelAcks } = await import('../../scheduler/cancel-requests.js');
  const deadline = Date.now() + ANSWER_WAIT_MS;
  for (;;) {
    const acks = cancelAcks(conn, ids);
    const complete = ids.every((id) => watchers.every((w) => acks.some((a) => a.requestId === id && a.watcher === w)));
    if (complete || Date.now() > deadline) return acks;
    await sleep(ANSWER_POLL_MS);
  }
}

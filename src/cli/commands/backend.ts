import { constants, existsSync } from 'node:fs';
import type { Command } from 'commander';
import { requireDatabaseDir, type DatabaseDir } from '../../database-dir.js';
import type { DamnitDb } from '../../db/database.js';
import { FailureRecord } from '../../runs/failure-record.js';
import { excerpt, plural } from '../../text.js';
import { mayAccess } from '../../sharing.js';
import { CliError } from '../errors.js';
import { addListenerOptions, formatStatus, startDaemon, type ListenOptions } from './listen.js';
import { programName } from '../../program-name.js';

/** supervisorctl's exit code for a program that is not running. */
const NOT_RUNNING_EXIT = 3;

/** Failed runs shown by `backend status`; the rest are counted. */
const FAILURES_SHOWN = 20;

/** The runs whose last processing failed (by reprocess or the backend), with why; '' when none. */
function failureSummary(db: DamnitDb): string {
  const failures = new FailureRecord(db.connection).list();
  if (failures.length === 0) return '';
  const lines = failures.slice(0, FAILURES_SHOWN).map((f) => `  r${f.run} ${f.data}: ${excerpt(f.reason)}`);
  if (failures.length > FAILURES_SHOWN) lines.push(`  and ${failures.length - FAILURES_SHOWN} more`);
  return `\nlast processing failed: ${plural(failures.length, 'run')} (cleared when reprocessed successfully)\n${lines.join('\n')}`;
}

/** What the backend has on its plate, from its tables in runs.sqlite (read only), and who holds the listener lock. */
async function queueSummary(dir: DatabaseDir): Promise<string> {
  const { openDatabase } = await import('../../db/database.js');
  const { JobStore } = await import('../../scheduler/job-store.js');
  const { describeClaim, ListenerLock, recordedClaim } = await import('../../scheduler/listener-claim.js');
  const db = openDatabase(dir, { readonly: true });
  try {
    if (!JobStore.existsIn(db.connection)) return `runs: none taken by a backend yet${failureSummary(db)}`;
    const store = new JobStore(db.connection);
    const c = store.counts();
    const claim = recordedClaim(store);
    const who = ListenerLock.isHeld(dir)
      ? `; listener ${claim ? describeClaim(claim) : 'unknown'}`
      : '; no backend holds the listener lock';
    return `runs: ${c.running} running, ${c.pending} waiting, ${c.done} done, ${c.failed} failed${who}${failureSummary(db)}`;
  } finally {
    db.close();
  }
}

function requireSupervisorSetup(dir: DatabaseDir): void {
  if (!existsSync(dir.supervisordConfig)) {
    throw new CliError(`the backend has not been started under Supervisor here (no supervisord.conf in ${dir.root}): run '${programName()} backend start'`);
  }
}

export function register(program: Command): void {
  const backend = program
    .command('backend')
    .description('Control the backend running under Supervisor for this database directory');

  addListenerOptions(
    backend.command('start').description('Start the backend under Supervisor (the same as listen --daemonize)'),
  ).action(async (opts: ListenOptions, cmd: Command) => {
    await startDaemon(requireDatabaseDir(), opts, Boolean(cmd.optsWithGlobals().debug));
  });

  backend
    .command('stop')
    .description('Stop the backend and its supervisord; runs cut short are processed again at the next start')
    .action(async () => {
      const dir = requireDatabaseDir();
      requireSupervisorSetup(dir);
      const { programStatus, shutdownSupervisord } = await import('../../supervisor/control.js');
      if ((await programStatus(dir)).supervisord === 'not-running') {
        console.log('damnit: supervisord is not running');
        return;
      }
      await shutdownSupervisord(dir);
      console.log('damnit: stopped (supervisord shut down)');
    });

  backend
    .command('restart')
    .description('Restart the backend (supervisorctl restart damnit), with the options it was started with')
    .action(async () => {
      const dir = requireDatabaseDir();
      requireSupervisorSetup(dir);
      const { programStatus, restartProgram } = await import('../../supervisor/control.js');
      if ((await programStatus(dir)).supervisord === 'not-running') {
        throw new CliError(`supervisord is not running for this database: start the backend with '${programName()} backend start'`);
      }
      const status = await restartProgram(dir);
      console.log(formatStatus(status));
      if (status.supervisord !== 'running' || status.state !== 'RUNNING') process.exitCode = 1;
    });

  backend
    .command('status')
    .description(`Show whether the backend runs (exit 0) or not (exit ${NOT_RUNNING_EXIT}), and its work`)
    .action(async () => {
      const dir = requireDatabaseDir();
      const { programStatus } = await import('../../supervisor/control.js');
      const { ListenerLock } = await import('../../scheduler/listener-claim.js');
      if (!existsSync(dir.supervisordConfig)) {
        console.log('damnit: not set up to run under Supervisor here (no supervisord.conf)');
        process.exitCode = NOT_RUNNING_EXIT;
      } else if (!mayAccess(dir.supervisordConfig, constants.R_OK)) {
        // Not one of the team: what runs.sqlite and the listener lock say is for everyone who reads here.
        console.log('damnit: supervisord.conf is readable by the team only (those who may write this directory)');
        if (!ListenerLock.isHeld(dir)) process.exitCode = NOT_RUNNING_EXIT;
      } else {
        const status = await programStatus(dir);
        const { crashLoop, describeCrashLoop, readyPid } = await import('../../supervisor/health.js');
        // A backend that has said it is ready is not looping, whatever its predecessors did.
        const running = status.supervisord === 'running' && ['RUNNING', 'STARTING', 'BACKOFF'].includes(status.state);
        const ready = status.supervisord === 'running' && status.pid !== null && readyPid(dir) === status.pid;
        const loop = running && !ready ? crashLoop(dir) : null;
        console.log(loop ? describeCrashLoop(loop, 'in the last 3 minutes') : formatStatus(status));
        if (loop || status.supervisord !== 'running' || status.state !== 'RUNNING') process.exitCode = NOT_RUNNING_EXIT;
      }
      console.log(await queueSummary(dir));
    });
}

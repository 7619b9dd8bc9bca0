import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { requireDatabaseDir, CONTEXT_FILE, type DatabaseDir } from '../../database-dir.js';
import { numberSetting } from '../../db/config-keys.js';
import type { DamnitDb } from '../../db/database.js';
import type { DatabaseDamagedError } from '../../db/errors.js';
import type { DatabasePatience } from '../../db/patience.js';
import { programName } from '../../program-name.js';
import {
  otherProposalPath,
  proposalPath,
  rawRunDir,
  runExists,
} from '../../runs/proposal-path.js';
import { describeRun, summariseVariables, type RunRequest } from '../../runs/run-request.js';
import type { RunEnvironment, RunExecutor } from '../../executors/executor.js';
import { plural } from '../../text.js';
import type { GuiUpdates } from '../../updates/gui-updates.js';
import { noteOutcome } from '../../runs/failure-record.js';
import { CancelWatcher } from '../../scheduler/cancel-requests.js';
import { appendJobOutput, ProcessLog, processingHeader } from '../../runs/process-log.js';
import { describeFailure, processingEnding, variableFailures } from '../../runs/run-report.js';
import { CliError, UsageError } from '../errors.js';
import { SlurmUnavailableError } from '../../executors/slurm-errors.js';
import { PROCESS_HERE_HINT, processPlace, SlurmSettingError } from '../../executors/slurm-settings.js';
import { ProgressReporter } from '../progress.js';
import { formatProblem, viewOverflowWarning, warnStaticProblems } from './read-context.js';

/** One try at a locked database blocks this long at most; DatabasePatience waits between tries. */
const BUSY_TRY_MS = 1_000;

interface ReprocessOptions {
  mock?: boolean;
  cluster?: boolean;
  direct?: boolean;
  concurrentJobs?: number;
  watch?: boolean;
  proposal?: string;
  match: string[];
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function parseConcurrentJobs(text: string): number {
  if (!/^\d+$/.test(text.trim()) || Number(text) < 1) {
    throw new UsageError(`--concurrent-jobs needs a whole number of jobs, at least 1 (got '${text}')`);
  }
  return Number(text);
}

/**
 * Where this command processes the runs: `--direct` here, `--cluster` as one array job with the
 * cluster variables in its tasks, else as process_on says (read now, so a change applies at once).
 */
function chooseWay(opts: ReprocessOptions, db: DamnitDb): 'here' | 'watch' | 'cluster-array' | 'slurm' | 'slurm-workers' {
  if (opts.direct && opts.cluster) throw new UsageError('--direct and --cluster contradict each other: choose one');
  if (opts.cluster) return 'cluster-array';
  if (opts.watch) return 'watch';
  if (opts.direct) return 'here';
  try {
    if (processPlace(db.metameta) === 'local') return 'here';
    return numberSetting(db.metameta, 'slurm_worker_jobs') !== 0 ? 'slurm-workers' : 'slurm';
  } catch (err) {
    if (err instanceof SlurmSettingError) throw new CliError(err.message);
    throw err;
  }
}

function parseProposal(text: string | undefined, db: DamnitDb): number {
  if (text !== undefined) {
    if (!/^\d+$/.test(text)) throw new CliError(`Proposal must be an integer (got '${text}')`, 2);
    return Number(text);
  }
  const configured = db.metameta.get('proposal');
  if (configured === null || configured === undefined) {
    throw new CliError(`no proposal number set: set one with '${programName()} proposal N' or pass --proposal N`);
  }
  return Number(configured);
}

/** The runs to process: the numbers given, or every run of the proposal already recorded. */
function selectRuns(args: string[], proposal: number, db: DamnitDb): { runs: number[]; all: boolean } {
  if (args.length === 1 && args[0] === 'all') return { runs: db.runNumbers(proposal), all: true };
  const bad = args.find((a) => !/^\d+$/.test(a));
  if (bad !== undefined) throw new CliError(`Run numbers must be integers (got '${bad}')`);
  return { runs: [...new Set(args.map(Number))].sort((a, b) => a - b), all: false };
}

/**
 * Where the runs' files are: the database's own proposal as configured, another proposal
 * (`--proposal`) where the facility keeps it. A mock run opens no files (its variables get
 * no proposal path either), so it never looks for the proposal among the facility's
 * directories: the configured or conventional place will do.
 */
function runDataRoot(dir: DatabaseDir, db: DamnitDb, proposal: number, mock: boolean): string {
  if (mock) {
    const configured = db.metameta.get('proposal_path');
    const own = proposal === Number(db.metameta.get('proposal'));
    return own && typeof configured === 'string' && configured !== ''
      ? path.resolve(dir.root, configured)
      : dir.conventionalProposalPath;
  }
  return proposal === Number(db.metameta.get('proposal')) ? proposalPath(dir, db) : otherProposalPath(proposal);
}

/** Loads the context once up front: a file that cannot load fails the command before any run. */
async function loadContext(
  dir: DatabaseDir,
  db: DamnitDb,
  python: string,
  debug: boolean,
  patience: DatabasePatience,
  updates: GuiUpdates,
): Promise<void> {
  const { describeContext } = await import('../../context/describe.js');
  const result = await describeContext(dir, python, {
    timeoutMs: numberSetting(db.metameta, 'context_load_timeout') * 1000,
    onOutput: (_stream, line) => process.stderr.write(`${line}\n`),
  });
  if (!result.ok) {
    for (const problem of result.problems) process.stderr.write(`${formatProblem(problem)}\n`);
    if (debug && result.traceback) process.stderr.write(result.traceback.replace(/\n?$/, '\n'));
    throw new CliError(`${CONTEXT_FILE} cannot be loaded; no run was processed`);
  }
  warnStaticProblems(result.context.static_problems);
  await patience.write(() => db.upsertVariables(result.context.variables));
  updates.variablesSet(result.context.variables);
  const overflow = viewOverflowWarning(db);
  if (overflow !== null) process.stderr.write(`warning: ${overflow}\n`);
}

export function register(program: Command): void {
  program
    .command('reprocess')
    .description('Compute the variables of context.py again for the given runs, where process_on says (this machine or Slurm)')
    .argument(
      '<run...>',
      "Run number, e.g. 96. Multiple runs can be specified at once, or pass 'all' to reprocess all runs in the database.",
    )
    .option('--mock', 'Use a fake run object instead of loading one from disk.')
    .option('--proposal <proposal>', 'Proposal number, e.g. 1234')
    .option('--cluster', 'Run the runs as one Slurm array job, at most concurrent_jobs at once.')
    .option('--direct', 'Process the runs on this machine, whatever process_on says.')
    .option('--concurrent-jobs <n>', 'At most this many runs at once (on Slurm: the array\'s limit), instead of concurrent_jobs.', parseConcurrentJobs)
    .option('--watch', 'Run jobs one-by-one with live output in the terminal')
    .option(
      '--match <match>',
      'String to match against variable titles (case-insensitive). Not a regex, simply `str in var.title`.',
      collect,
      [],
    )
    .action(async (runArgs: string[], opts: ReprocessOptions, command: Command) => {
      const debug = Boolean(command.optsWithGlobals().debug);
      // What runs the runs is loaded now, not at start: help and usage need none of it.
      const { openDatabase } = await import('../../db/database.js');
      const { DatabasePatience } = await import('../../db/patience.js');
      const { loadRunEnvironment } = await import('../../runs/run-environment.js');
      const { clusterNote, reprocessOnCluster } = await import('../reprocess-cluster.js');
      const { COMMAND_FLUSH_MS, COMMAND_NOTICES, openGuiUpdates } = await import('../../updates/gui-updates.js');
      const dir = requireDatabaseDir();
      const db = openDatabase(dir, { busyTimeoutMs: BUSY_TRY_MS });
      let updates: GuiUpdates | undefined;
      try {
        const way = chooseWay(opts, db);
        const proposal = parseProposal(opts.proposal, db);
        const { runs, all } = selectRuns(runArgs, proposal, db);
        const root = runDataRoot(dir, db, proposal, Boolean(opts.mock));
        const env = await loadRunEnvironment(dir, db, { proposalPath: root });
        const patience = new DatabasePatience({
          file: dir.databaseFile,
          limitMs: numberSetting(db.metameta, 'db_busy_timeout') * 1000,
          onWait: (message) => process.stderr.write(`${message}\n`),
        });
        updates = openGuiUpdates(db, COMMAND_NOTICES);
        await loadContext(dir, db, env.python, debug, patience, updates);

        const missing = opts.mock ? [] : runs.filter((run) => !runExists(root, run));
        const available = runs.filter((run) => !missing.includes(run));
        if (all) {
          console.log(`Reprocessing ${available.length} runs already recorded, skipping ${missing.length}...`);
        }
        if (missing.length > 0) {
          const where = missing.length === 1 ? ` (no ${rawRunDir(root, missing[0] as number)})` : ` (no raw data under ${root}/raw)`;
          process.stderr.write(
            `Warning: skipping ${missing.length} runs because they don't exist: [${missing.join(', ')}]${where}\n`,
          );
        }

        // Runs finish in any order; recorded now, in number order, they stay in that order for
        // readers that list run_info as stored (the reference's Python API: db.runs()).
        await patience.write(() => db.ensureRuns(proposal, available));
        const progress = new ProgressReporter(available.length);
        const request = (run: number): RunRequest => ({
          proposal, run, runData: 'all', mock: Boolean(opts.mock), match: opts.match, cluster: 'include',
        });
        const concurrentJobs = opts.concurrentJobs ?? Math.max(1, numberSetting(db.metameta, 'concurrent_jobs'));
        let tally: Tally;
        if (way === 'cluster-array' || way === 'slurm') {
          let failed: number;
          try {
            failed = await reprocessOnCluster(available.map(request), {
              db, env, progress, debug, updates,
              maxConcurrent: concurrentJobs,
              processOnSlurm: way === 'slurm',
              describeResults: (outcome) => summariseVariables(outcome.variables),
            });
          } catch (err) {
            if (err instanceof SlurmSettingError) throw new CliError(err.message);
            if (err instanceof SlurmUnavailableError && way === 'slurm') throw new CliError(`${err.message}${PROCESS_HERE_HINT}`);
            throw err;
          }
          tally = { ok: available.length - failed, failed, notRecorded: [], interrupted: null, damaged: null };
        } else if (way === 'watch') {
          const { reprocessWatched } = await import('../reprocess-watch.js');
          const watched = await reprocessWatched(available.map(request), {
            db, env, debug, patience, updates,
            onProblem: (message) => process.stderr.write(`warning: ${message}\n`),
            describeResults: (outcome) => summariseVariables(outcome.variables) + clusterNote(outcome),
          });
          tally = { ...watched, notRecorded: [], damaged: null };
        } else {
          tally = await reprocessHere(available.map(request), {
            db, env, progress, debug, patience, updates, concurrentJobs, workerJobs: way === 'slurm-workers',
          });
        }
        progress.close();
        printSummary(available.length, tally, opts);
      } finally {
        await updates?.close(COMMAND_FLUSH_MS);
        db.close();
      }
    });
}

/** How a command's runs went. */
interface Tally {
  ok: number;
  failed: number;
  /** Runs computed (their HDF5 files written) whose rows the locked database would not take. */
  notRecorded: number[];
  /** The signal that cut the command short, if one did. */
  interrupted: NodeJS.Signals | null;
  /** A damaged database ends the command, after its summary. */
  damaged: DatabaseDamagedError | null;
}

/** A word as a shell reads it back. */
function shellWord(word: string): string {
  return /^[\w.,:+=@%/-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`;
}

/** The closing lines: always printed, also after Ctrl-C or a database that stayed locked. */
function printSummary(total: number, tally: Tally, opts: ReprocessOptions): void {
  const { ok, failed, notRecorded, interrupted } = tally;
  const left = total - ok - failed;
  const cut = interrupted ? `; interrupted by ${interrupted}${left > 0 ? `, ${left} not processed` : ''}` : '';
  console.log(`Processed ${plural(total, 'run')}: ${ok} ok, ${failed} failed${cut}`);
  if (notRecorded.length > 0) {
    const again = [programName(), 'reprocess', ...notRecorded.map(String)];
    if (opts.proposal !== undefined) again.push('--proposal', opts.proposal);
    for (const match of opts.match) again.push('--match', match);
    process.stderr.write(
      `${plural(notRecorded.length, 'run')} computed but not recorded in runs.sqlite, which stayed locked ` +
        `(their values are in extracted_data/): run '${again.map(shellWord).join(' ')}' once it is free\n`,
    );
  }
  if (tally.damaged) throw tally.damaged;
  if (interrupted) process.exitCode = 130;
  else if (failed > 0) process.exitCode = 1;
}

/**
 * The runs on this machine in warm workers, `concurrent_jobs` at once (capped by the cores).
 * Ctrl-C (or SIGTERM) starts no more runs and stops those running; a run whose record gives
 * up on a locked database goes on the list retried at the end; a damaged database ends the
 * command once the runs in progress are done.
 */
async function reprocessHere(
  requests: RunRequest[],
  opts: {
    db: DamnitDb;
    env: RunEnvironment;
    progress: ProgressReporter;
    debug: boolean;
    patience: DatabasePatience;
    updates: GuiUpdates;
    concurrentJobs: number;
    /** Through warm worker jobs on Slurm (slurm-workers.ts), concurrentJobs of them, rather than here. */
    workerJobs: boolean;
  },
): Promise<Tally> {
  const { db, env, progress, debug, patience, updates } = opts;
  const { default: PQueue } = await import('p-queue');
  const { processRun } = await import('../../runs/process-run.js');
  const { DatabaseBusyError, DatabaseDamagedError, explainDatabaseError } = await import('../../db/errors.js');
  const { clusterJobNote, clusterNote } = await import('../reprocess-cluster.js');
  // Worker jobs run elsewhere: this machine's cores do not bound them.
  const concurrency = Math.max(1, opts.workerJobs ? opts.concurrentJobs : Math.min(opts.concurrentJobs, os.availableParallelism()));
  const queue = new PQueue({ concurrency });
  const executor: RunExecutor = opts.workerJobs
    ? new (await import('../../executors/slurm-workers.js')).SlurmWorkerPool(env, {
        settings: { get: (key) => (key === 'concurrent_jobs' ? opts.concurrentJobs : db.metameta.get(key)) },
        onNote: (note) => progress.note(note),
      })
    : new (await import('../../executors/warm-worker.js')).WarmWorkerExecutor(env, {
        onWorkerOutput: debug ? (_stream, line) => progress.note(`[worker] ${line}`) : undefined,
      });
  let interrupted: NodeJS.Signals | null = null;
  let damaged: DatabaseDamagedError | null = null;
  const problems = new Set<string>();
  // An unwritable process_logs/ is said once, not once per run.
  const warnOnce = (message: string): void => {
    const key = message.replace(/r\d+-p\d+\.out/, '');
    if (!problems.has(key)) progress.note(`warning: ${message}`);
    problems.add(key);
  };
  const stop = (signal: NodeJS.Signals): void => {
    interrupted ??= signal;
    queue.clear();
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, stop);
  let ok = 0;
  let failed = 0;
  const runOf = new Map(requests.map((req) => [describeRun(req), req.run]));
  // `cancel`: a run waiting here is skipped, one running is stopped as the time limit stops it.
  const controllers = new Map(requests.map((req) => [req.run, { controller: new AbortController(), running: false }]));
  const watcher = new CancelWatcher(db.connection, (request) => {
    if (request.proposal !== requests[0]?.proposal) return [];
    const answers: { run: number; what: string }[] = [];
    for (const [run, entry] of controllers) {
      if ((request.run !== null && request.run !== run) || entry.controller.signal.aborted) continue;
      entry.controller.abort(`cancelled by ${request.requestedBy}`);
      answers.push({ run, what: entry.running ? `stopped while running in reprocess (pid ${process.pid})` : `skipped by reprocess (pid ${process.pid}), where it was waiting` });
    }
    return answers;
  });
  for (const req of requests) {
    void queue.add(async () => {
      const label = describeRun(req);
      const started = performance.now();
      const cancel = controllers.get(req.run) as { controller: AbortController; running: boolean };
      if (cancel.controller.signal.aborted) {
        failed += 1;
        progress.finished({ label, ok: false, detail: String(cancel.controller.signal.reason), seconds: 0 });
        return;
      }
      cancel.running = true;
      progress.started(label);
      const finished = (ok: boolean, detail: string): void =>
        progress.finished({ label, ok, detail, seconds: (performance.now() - started) / 1000 });
      const processing = { proposal: req.proposal, run: req.run, data: req.runData };
      const processingIds = [updates.processingRunning(processing)];
      const processLog = ProcessLog.open(db.dir, req.run, req.proposal, warnOnce);
      processLog?.write(processingHeader(req.run, req.proposal));
      const ended = (outcome: Parameters<typeof processingEnding>[0]): void => {
        processLog?.write(processingEnding(outcome, (performance.now() - started) / 1000));
        processLog?.close();
        noteOutcome(db.connection, req.proposal, req.run, req.runData, outcome);
      };
      try {
        const outcome = await processRun(req, {
          db,
          executor,
          patience,
          onOutput: (_stream, line) => {
            processLog?.line(line);
            if (debug) progress.note(`[r${req.run}] ${line}`);
          },
          env,
          onClusterJob: (jobId, logPath) => {
            progress.note(clusterJobNote(db, req, jobId, logPath));
            processLog?.line(`----- cluster variables: Slurm job ${jobId} submitted, output in ${logPath}`);
            processingIds.push(updates.processingSubmitted(processing, { cluster: null, jobId }));
          },
          onRecorded: (results) => updates.valuesRecorded(req.proposal, req.run, results),
          signal: cancel.controller.signal,
        });
        cancel.running = false;
        const part = outcome.cluster;
        if (processLog && part?.jobId && part.logPath) appendJobOutput(processLog, part.jobId, part.logPath);
        ended(outcome);
        if (outcome.ok) {
          ok += 1;
          finished(true, summariseVariables(outcome.variables) + clusterNote(outcome));
          for (const failure of variableFailures(outcome.variables)) progress.note(describeFailure(failure, req.run));
        } else {
          failed += 1;
          finished(false, interrupted ? `interrupted (${interrupted})` : outcome.reason);
          if (debug && outcome.detail) progress.note(outcome.detail);
        }
      } catch (thrown) {
        const err = explainDatabaseError(thrown, db.dir.databaseFile);
        ended({ ok: false, reason: (err as Error).message });
        if (err instanceof DatabaseBusyError) {
          // Counted once the retry at the end has settled it.
          finished(false, `computed, not recorded yet: ${err.message}; tried again at the end`);
          return;
        }
        failed += 1;
        if (err instanceof DatabaseDamagedError) {
          // Said once, in full, after the summary; no run after this one starts.
          finished(false, 'not recorded: runs.sqlite is damaged');
          damaged ??= err;
          queue.clear();
        } else {
          finished(false, (err as Error).message);
        }
      } finally {
        for (const id of processingIds) updates.processingFinished(id);
      }
    });
  }
  try {
    await queue.onIdle();
    await executor.close();
  } finally {
    watcher.close();
    for (const signal of ['SIGINT', 'SIGTERM'] as const) process.off(signal, stop);
  }
  if (damaged) return { ok, failed, notRecorded: [], interrupted, damaged };
  const { written, left } = patience.retryDeferred();
  for (const label of written) progress.note(`${label}: recorded now that ${db.dir.databaseFile} is free again`);
  const notRecorded = left.map((label) => runOf.get(label) ?? Number.NaN);
  return { ok: ok + written.length, failed: failed + left.length, notRecorded, interrupted, damaged: null };
}

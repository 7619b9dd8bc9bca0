import os from 'node:os';
import type { Command } from 'commander';
import PQueue from 'p-queue';
import { describeContext } from '../../context/describe.js';
import { requireDatabaseDir, CONTEXT_FILE, type DatabaseDir } from '../../database-dir.js';
import { numberSetting } from '../../db/config-keys.js';
import { openDatabase, type DamnitDb } from '../../db/database.js';
import { WarmWorkerExecutor } from '../../executors/warm-worker.js';
import { processRun } from '../../runs/process-run.js';
import { rawRunDir, runExists } from '../../runs/proposal-path.js';
import { loadRunEnvironment } from '../../runs/run-environment.js';
import { describeRun, summariseVariables, type RunRequest } from '../../runs/run-request.js';
import type { RunEnvironment } from '../../executors/executor.js';
import { plural } from '../../text.js';
import { CliError } from '../errors.js';
import { ProgressReporter } from '../progress.js';
import { clusterJobNote, clusterNote, reprocessOnCluster } from '../reprocess-cluster.js';
import { reprocessWatched } from '../reprocess-watch.js';
import { formatProblem } from './read-context.js';
import { programName } from '../../program-name.js';

interface ReprocessOptions {
  mock?: boolean;
  cluster?: boolean;
  watch?: boolean;
  proposal?: string;
  match: string[];
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
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

/** Loads the context once up front: a file that cannot load fails the command before any run. */
async function loadContext(dir: DatabaseDir, db: DamnitDb, python: string, debug: boolean): Promise<void> {
  const result = await describeContext(dir, python, {
    timeoutMs: numberSetting(db.metameta, 'context_load_timeout') * 1000,
    onOutput: (_stream, line) => process.stderr.write(`${line}\n`),
  });
  if (!result.ok) {
    for (const problem of result.problems) process.stderr.write(`${formatProblem(problem)}\n`);
    if (debug && result.traceback) process.stderr.write(result.traceback.replace(/\n?$/, '\n'));
    throw new CliError(`${CONTEXT_FILE} cannot be loaded; no run was processed`);
  }
  // At run time these fail only their own variable (contract section 5), so they do not stop us.
  for (const problem of result.context.static_problems) {
    process.stderr.write(`warning: ${formatProblem(problem)}\n`);
  }
  db.upsertVariables(result.context.variables);
}

export function register(program: Command): void {
  program
    .command('reprocess')
    .description('Compute the variables of context.py again for the given runs, on this machine')
    .argument(
      '<run...>',
      "Run number, e.g. 96. Multiple runs can be specified at once, or pass 'all' to reprocess all runs in the database.",
    )
    .option('--mock', 'Use a fake run object instead of loading one from disk.')
    .option('--proposal <proposal>', 'Proposal number, e.g. 1234')
    .option('--cluster', 'Run the runs as one Slurm array job, at most concurrent_jobs at once.')
    .option('--watch', 'Run jobs one-by-one with live output in the terminal')
    .option(
      '--match <match>',
      'String to match against variable titles (case-insensitive). Not a regex, simply `str in var.title`.',
      collect,
      [],
    )
    .action(async (runArgs: string[], opts: ReprocessOptions, command: Command) => {
      const debug = Boolean(command.optsWithGlobals().debug);
      const dir = requireDatabaseDir();
      const db = openDatabase(dir);
      try {
        const proposal = parseProposal(opts.proposal, db);
        const { runs, all } = selectRuns(runArgs, proposal, db);
        const env = await loadRunEnvironment(dir, db);
        await loadContext(dir, db, env.python, debug);

        const root = env.proposalPath;
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
        db.ensureRuns(proposal, available);
        const progress = new ProgressReporter(available.length);
        const request = (run: number): RunRequest => ({
          proposal, run, runData: 'all', mock: Boolean(opts.mock), match: opts.match, cluster: 'include',
        });
        let failed: number;
        if (opts.cluster) {
          failed = await reprocessOnCluster(available.map(request), {
            db, env, progress, debug,
            maxConcurrent: Math.max(1, numberSetting(db.metameta, 'concurrent_jobs')),
            describeResults: (outcome) => summariseVariables(outcome.variables),
          });
        } else if (opts.watch) {
          failed = await reprocessWatched(available.map(request), {
            db, env, debug,
            describeResults: (outcome) => summariseVariables(outcome.variables) + clusterNote(outcome),
          });
        } else {
          failed = await reprocessHere(available.map(request), { db, env, progress, debug });
        }
        progress.close();
        console.log(`Processed ${plural(available.length, 'run')}: ${available.length - failed} ok, ${failed} failed`);
        if (failed > 0) process.exitCode = 1;
      } finally {
        db.close();
      }
    });
}

/** The runs on this machine in warm workers, `concurrent_jobs` at once (capped by the cores); returns how many failed. */
async function reprocessHere(
  requests: RunRequest[],
  opts: { db: DamnitDb; env: RunEnvironment; progress: ProgressReporter; debug: boolean },
): Promise<number> {
  const { db, env, progress, debug } = opts;
  const concurrency = Math.max(1, Math.min(numberSetting(db.metameta, 'concurrent_jobs'), os.availableParallelism()));
  const queue = new PQueue({ concurrency });
  const executor = new WarmWorkerExecutor(env, {
    onWorkerOutput: debug ? (_stream, line) => progress.note(`[worker] ${line}`) : undefined,
  });
  let failed = 0;
  for (const req of requests) {
    void queue.add(async () => {
      const label = describeRun(req);
      const started = performance.now();
      progress.started(label);
      const outcome = await processRun(req, {
        db,
        executor,
        onOutput: debug ? (_stream, line) => progress.note(`[r${req.run}] ${line}`) : undefined,
        env,
        onClusterJob: (jobId, logPath) => progress.note(clusterJobNote(db, req, jobId, logPath)),
      });
      const seconds = (performance.now() - started) / 1000;
      if (outcome.ok) {
        progress.finished({ label, ok: true, detail: summariseVariables(outcome.variables) + clusterNote(outcome), seconds });
      } else {
        failed += 1;
        progress.finished({ label, ok: false, detail: outcome.reason, seconds });
        if (debug && outcome.detail) progress.note(outcome.detail);
      }
    });
  }
  await queue.onIdle();
  await executor.close();
  return failed;
}

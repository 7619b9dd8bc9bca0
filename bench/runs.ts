/**
 * Run processing speed: the sample context on BENCH_RUNS (default 200) synthetic runs, processed
 * two ways through the same path reprocess takes (processRun: execute, then record in SQLite):
 * a fresh interpreter per run (FreshProcessExecutor, the reference's model) and a warm worker
 * (WarmWorkerExecutor). Reported: runs per second at reprocess's concurrency, overhead per run
 * beyond the variables' own compute time (the sum of their duration_s), the same one run at a
 * time, and peak memory of the Python processes (RSS and PSS, sampled from /proc).
 * Goals: at least 20x lower overhead than a fresh interpreter; under 50 ms for a warm run.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import PQueue from 'p-queue';
import { DatabaseDir } from '../src/database-dir.js';
import { openDatabase, type DamnitDb } from '../src/db/database.js';
import type { RunEnvironment, RunExecutor } from '../src/executors/executor.js';
import { FreshProcessExecutor } from '../src/executors/local.js';
import { WarmWorkerExecutor } from '../src/executors/warm-worker.js';
import { PACKAGE_ROOT } from '../src/validate/package-files.js';
import { figureLine, median } from './report.js';
import { processRun } from '../src/runs/process-run.js';
import type { RunRequest } from '../src/runs/run-request.js';

const PYTHON = '/usr/bin/python3';
const PROPOSAL = 1234;
const TRAINS = 20;
const OVERHEAD_RATIO_GOAL = 20;
const WARM_OVERHEAD_GOAL_MS = 50;
const MEMORY_SAMPLE_MS = 50;

interface RunTiming {
  run: number;
  ok: boolean;
  wallMs: number;
  computeMs: number;
}

interface ModeResult {
  name: string;
  wallMs: number;
  timings: RunTiming[];
  sequential: RunTiming[];
  peakRssKiB: number;
  peakPssKiB: number;
  peakProcesses: number;
}

const line = figureLine('runs');

function mean(values: number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

const ms = (t: number): string => `${t.toFixed(1)} ms`;
const mib = (kib: number): string => `${(kib / 1024).toFixed(0)} MiB`;

/** The processes below `root` (not root itself), from /proc. */
function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Field 4 (ppid) follows the command name, which may hold spaces: read after its ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(entry));
      children.set(ppid, list);
    } catch {
      // Gone between readdir and read.
    }
  }
  const found: number[] = [];
  const todo = [root];
  while (todo.length > 0) {
    for (const child of children.get(todo.pop() as number) ?? []) {
      found.push(child);
      todo.push(child);
    }
  }
  return found;
}

/** RSS and PSS (KiB) of one process; zeros if it is gone. */
function memoryOf(pid: number): { rss: number; pss: number } {
  try {
    const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(rollup)?.[1] ?? 0);
    return { rss: field('Rss'), pss: field('Pss') };
  } catch {
    return { rss: 0, pss: 0 };
  }
}

/** Samples the memory of this process's descendants (the Python side) until stopped. */
function sampleMemory(): () => { rss: number; pss: number; processes: number } {
  const peak = { rss: 0, pss: 0, processes: 0 };
  const sample = (): void => {
    const pids = descendants(process.pid);
    let rss = 0;
    let pss = 0;
    for (const pid of pids) {
      const m = memoryOf(pid);
      rss += m.rss;
      pss += m.pss;
    }
    peak.rss = Math.max(peak.rss, rss);
    peak.pss = Math.max(peak.pss, pss);
    peak.processes = Math.max(peak.processes, pids.length);
  };
  const timer = setInterval(sample, MEMORY_SAMPLE_MS);
  return () => {
    clearInterval(timer);
    sample();
    return peak;
  };
}

function environment(root: string, proposalPath: string): RunEnvironment {
  mkdirSync(root, { recursive: true });
  writeFileSync(path.join(root, 'context.py'), readFileSync(path.join(PACKAGE_ROOT, 'fixtures', 'sample', 'context.py')));
  const dir = new DatabaseDir(root);
  openDatabase(dir, { create: true }).close();
  return { dir, python: PYTHON, proposalPath, timeoutMs: 600_000, mymdcSource: null };
}

async function timedRun(deps: { db: DamnitDb; executor: RunExecutor; env: RunEnvironment }, run: number): Promise<RunTiming> {
  const req: RunRequest = { proposal: PROPOSAL, run, runData: 'all', mock: false, match: [], cluster: 'include' };
  const started = performance.now();
  const outcome = await processRun(req, deps);
  const wallMs = performance.now() - started;
  const computeMs = outcome.ok ? outcome.variables.reduce((sum, v) => sum + (v.duration_s ?? 0), 0) * 1000 : 0;
  if (!outcome.ok) console.error(`runs: r${run} failed: ${outcome.reason}`);
  return { run, ok: outcome.ok, wallMs, computeMs };
}

async function measure(
  name: string,
  makeExecutor: () => RunExecutor,
  env: RunEnvironment,
  runs: number[],
  sequentialRuns: number[],
  concurrency: number,
): Promise<ModeResult> {
  const executor = makeExecutor();
  const db = openDatabase(env.dir);
  const deps = { db, executor, env };
  const stopSampling = sampleMemory();
  const queue = new PQueue({ concurrency });
  const timings: RunTiming[] = [];
  const started = performance.now();
  try {
    for (const run of runs) void queue.add(async () => timings.push(await timedRun(deps, run)));
    await queue.onIdle();
    const wallMs = performance.now() - started;
    const sequential: RunTiming[] = [];
    for (const run of sequentialRuns) sequential.push(await timedRun(deps, run));
    const peak = stopSampling();
    return { name, wallMs, timings, sequential, peakRssKiB: peak.rss, peakPssKiB: peak.pss, peakProcesses: peak.processes };
  } finally {
    await executor.close();
    db.close();
  }
}

/**
 * The shim's own work for a run in an interpreter that is already warm, with no fork, socket or
 * orchestrator: runner.main called in a loop after the worker's preload and warm-up. What is
 * left of a run's overhead there (loading context.py, opening the run, writing its HDF5 file)
 * both executors pay; the rest of theirs is the cost of the executor itself.
 */
const IN_PROCESS_FLOOR = String.raw`
import json, os, sys, time
from _damnit_shim import runner, worker_warm_up
from _damnit_shim.shim_channel import Channel
context, proposal_path, out_dir, runs, results_file = sys.argv[1:6]
worker_warm_up.preload()
worker_warm_up.warm_up()
results = []
for run in [int(r) for r in runs.split(",")]:
    channel = os.path.join(out_dir, "channel-%d.jsonl" % run)
    started = time.perf_counter()
    runner.main(Channel("file:" + channel), [
        context, "--proposal", "1234", "--run", str(run), "--run-data", "all",
        "--proposal-path", proposal_path, "--out", os.path.join(out_dir, "p1234_r%d.h5" % run)])
    wall = time.perf_counter() - started
    with open(channel) as f:
        messages = [json.loads(line) for line in f]
    compute = sum(m["duration_s"] or 0 for m in messages if m["kind"] == "variable_result")
    results.append({"run": run, "ok": messages[-1]["kind"] == "run_finished",
                     "wallMs": wall * 1000, "computeMs": compute * 1000})
with open(results_file, "w") as f:
    json.dump(results, f)
`;

async function inProcessFloor(root: string, proposalPath: string, runs: number[]): Promise<RunTiming[]> {
  const outDir = path.join(root, 'in-process');
  mkdirSync(outDir);
  const resultsFile = path.join(outDir, 'results.json');
  const context = path.join(PACKAGE_ROOT, 'fixtures', 'sample', 'context.py');
  await execa(PYTHON, ['-c', IN_PROCESS_FLOOR, context, proposalPath, outDir, runs.join(','), resultsFile], {
    env: { PYTHONPATH: path.join(PACKAGE_ROOT, 'python-shim') },
  });
  return JSON.parse(readFileSync(resultsFile, 'utf8')) as RunTiming[];
}

function overheads(timings: RunTiming[]): number[] {
  return timings.filter((t) => t.ok).map((t) => t.wallMs - t.computeMs);
}

export async function benchRuns(): Promise<void> {
  const count = Number(process.env.BENCH_RUNS ?? 200);
  if (!Number.isInteger(count) || count < 1) throw new Error(`BENCH_RUNS must be a positive integer (got ${process.env.BENCH_RUNS})`);
  const cores = os.availableParallelism();
  const concurrency = cores; // what reprocess uses: concurrent_jobs (15) capped by the cores
  const sequentialCount = Math.min(count, Math.max(10, Math.round(count / 10)));
  const root = mkdtempSync(path.join(os.tmpdir(), 'damnit-bench-runs-'));
  try {
    const proposalPath = path.join(root, 'proposal');
    let t0 = performance.now();
    await execa(PYTHON, [path.join(PACKAGE_ROOT, 'fixtures', 'make_sample_proposal.py'), proposalPath,
      '--runs', String(count), '--trains', String(TRAINS)]);
    line('machine', `${cores} cores, ${os.cpus()[0]?.model ?? 'unknown CPU'}, load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
    line('sample proposal', `${count} runs of ${TRAINS} trains (${((performance.now() - t0) / 1000).toFixed(1)} s to make)`);
    line('context', 'fixtures/sample/context.py (2 variables), recorded through processRun');

    const runs = Array.from({ length: count }, (_, i) => i + 1);
    const sequentialRuns = runs.slice(0, sequentialCount);
    const freshEnv = environment(path.join(root, 'fresh'), proposalPath);
    const warmEnv = environment(path.join(root, 'warm'), proposalPath);
    let warmExecutor: WarmWorkerExecutor | undefined;
    const results: ModeResult[] = [];
    t0 = performance.now();
    results.push(await measure('fresh', () => new FreshProcessExecutor(freshEnv), freshEnv, runs, sequentialRuns, concurrency));
    results.push(
      await measure('warm', () => (warmExecutor = new WarmWorkerExecutor(warmEnv)), warmEnv, runs, sequentialRuns, concurrency),
    );
    const [fresh, warm] = results as [ModeResult, ModeResult];
    const floor = median(overheads(await inProcessFloor(root, proposalPath, sequentialRuns)));

    for (const mode of results) {
      const okRuns = mode.timings.filter((t) => t.ok).length;
      line(`${mode.name}: ${count} runs, ${concurrency} at a time`, `${(mode.wallMs / 1000).toFixed(1)} s, ${(count / (mode.wallMs / 1000)).toFixed(1)} runs/s (${okRuns} ok)`);
      line(`${mode.name}: variables' compute per run (median)`, ms(median(mode.timings.map((t) => t.computeMs))));
      const over = overheads(mode.timings);
      line(`${mode.name}: overhead per run, ${concurrency} at a time (median / mean)`, `${ms(median(over))} / ${ms(mean(over))}`);
      line(`${mode.name}: overhead per run, one at a time (median of ${sequentialCount})`, ms(median(overheads(mode.sequential))));
      line(`${mode.name}: peak memory of the Python processes`, `RSS ${mib(mode.peakRssKiB)}, PSS ${mib(mode.peakPssKiB)} (${mode.peakProcesses} processes at most)`);
    }
    if (warmExecutor?.workerInfo) {
      const info = warmExecutor.workerInfo;
      line('warm: worker start (imports and warm-up, once)', `${info.seconds.toFixed(2)} s; preloaded ${info.preloaded.join(', ')}`);
    }
    line(`in-process floor: overhead per run (median of ${sequentialCount})`, `${ms(floor)}  (load context.py, open the run, write its HDF5 file)`);
    const ratio = median(overheads(fresh.timings)) / median(overheads(warm.timings));
    const sequentialRatio = median(overheads(fresh.sequential)) / median(overheads(warm.sequential));
    const warmOverhead = median(overheads(warm.sequential));
    line('ratio: runs/s warm / fresh', `${(fresh.wallMs / warm.wallMs).toFixed(1)}x`);
    line(`ratio: overhead fresh / warm, ${concurrency} at a time`, `${ratio.toFixed(1)}x  (goal >= ${OVERHEAD_RATIO_GOAL}x: ${ratio >= OVERHEAD_RATIO_GOAL ? 'met' : 'NOT met'})`);
    line('ratio: overhead fresh / warm, one at a time', `${sequentialRatio.toFixed(1)}x  (goal >= ${OVERHEAD_RATIO_GOAL}x: ${sequentialRatio >= OVERHEAD_RATIO_GOAL ? 'met' : 'NOT met'})`);
    // A fresh interpreter imports xarray and friends inside the first variable that needs them,
    // so its "compute" holds imports. Counting only the warm compute of the same run as compute:
    const warmCompute = new Map(warm.sequential.map((t) => [t.run, t.computeMs]));
    const freshWithImports = median(
      fresh.sequential.filter((t) => t.ok && warmCompute.has(t.run)).map((t) => t.wallMs - (warmCompute.get(t.run) ?? 0)),
    );
    const importRatio = freshWithImports / warmOverhead;
    line('fresh overhead, imports in variables counted as overhead', `${ms(freshWithImports)} one at a time: ${importRatio.toFixed(1)}x the warm overhead  (goal >= ${OVERHEAD_RATIO_GOAL}x: ${importRatio >= OVERHEAD_RATIO_GOAL ? 'met' : 'NOT met'})`);
    const beyondFloor = (median(overheads(fresh.sequential)) - floor) / (warmOverhead - floor);
    line('ratio: overhead beyond the in-process floor, fresh / warm', `${beyondFloor.toFixed(1)}x  (warm: ${ms(warmOverhead - floor)} of executor per run)`);
    line('warm run overhead, one at a time', `${ms(warmOverhead)}  (goal < ${WARM_OVERHEAD_GOAL_MS} ms: ${warmOverhead < WARM_OVERHEAD_GOAL_MS ? 'met' : 'NOT met'})`);
    line('ratio: peak RSS fresh / warm', `${(fresh.peakRssKiB / warm.peakRssKiB).toFixed(2)}x (PSS ${(fresh.peakPssKiB / warm.peakPssKiB).toFixed(2)}x)`);
    line('total', `${((performance.now() - t0) / 1000).toFixed(1)} s, load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

/**
 * Processing on the local single-node Slurm (test/helpers/slurm-cluster.ts, started as root):
 * the sample context on BENCH_SLURM_RUNS (default 100) synthetic runs through processRun, three
 * ways at the same concurrency (this machine's cores):
 * - local warm worker (WarmWorkerExecutor), the reference point;
 * - one Slurm job per run (SlurmJobExecutor: process_on slurm);
 * - warm worker jobs on Slurm (SlurmWorkerPool: process_on slurm, slurm_worker_jobs 1).
 * Reported: runs/s, and overhead per run (wall time minus the variables' own compute time) at
 * that concurrency and one run at a time once the workers are warm.
 * Goal: overhead through worker jobs within 3x of the local warm worker's.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import PQueue from 'p-queue';
import { DatabaseDir } from '../src/database-dir.js';
import { openDatabase } from '../src/db/database.js';
import type { RunEnvironment, RunExecutor } from '../src/executors/executor.js';
import { SlurmJobExecutor } from '../src/executors/slurm-job.js';
import { SlurmWorkerPool } from '../src/executors/slurm-workers.js';
import { WarmWorkerExecutor } from '../src/executors/warm-worker.js';
import { processRun } from '../src/runs/process-run.js';
import type { RunRequest } from '../src/runs/run-request.js';
import { PACKAGE_ROOT } from '../src/validate/package-files.js';
import { startSlurmCluster } from '../test/helpers/slurm-cluster.js';
import { figureLine, median } from './report.js';

const PYTHON = '/usr/bin/python3';
const PROPOSAL = 1234;
const TRAINS = 20;
const SEQUENTIAL_RUNS = 10;
const OVERHEAD_RATIO_GOAL = 3;

interface Timing {
  ok: boolean;
  wallMs: number;
  computeMs: number;
}

const line = figureLine('slurm');

const overheads = (timings: Timing[]): number[] => timings.filter((t) => t.ok).map((t) => t.wallMs - t.computeMs);
const ms = (t: number): string => `${t.toFixed(1)} ms`;

function environment(root: string, proposalPath: string): RunEnvironment {
  mkdirSync(root, { recursive: true });
  writeFileSync(path.join(root, 'context.py'), readFileSync(path.join(PACKAGE_ROOT, 'fixtures', 'sample', 'context.py')));
  const dir = new DatabaseDir(root);
  openDatabase(dir, { create: true }).close();
  return { dir, python: PYTHON, proposalPath, timeoutMs: 600_000, mymdcSource: null };
}

/** The runs through `executor`, `concurrency` at once, then SEQUENTIAL_RUNS of them one at a time. */
async function measure(executor: RunExecutor, env: RunEnvironment, runs: number[], concurrency: number) {
  const db = openDatabase(env.dir);
  const timed = async (run: number): Promise<Timing> => {
    const req: RunRequest = { proposal: PROPOSAL, run, runData: 'all', mock: false, match: [], cluster: 'include' };
    const started = performance.now();
    const outcome = await processRun(req, { db, executor, env });
    if (!outcome.ok) console.error(`slurm: r${run} failed: ${outcome.reason}`);
    const computeMs = outcome.ok ? outcome.variables.reduce((sum, v) => sum + (v.duration_s ?? 0), 0) * 1000 : 0;
    return { ok: outcome.ok, wallMs: performance.now() - started, computeMs };
  };
  try {
    const queue = new PQueue({ concurrency });
    const timings: Timing[] = [];
    const started = performance.now();
    for (const run of runs) void queue.add(async () => timings.push(await timed(run)));
    await queue.onIdle();
    const wallMs = performance.now() - started;
    const sequential: Timing[] = [];
    for (const run of runs.slice(0, SEQUENTIAL_RUNS)) sequential.push(await timed(run));
    return { wallMs, timings, sequential };
  } finally {
    await executor.close();
    db.close();
  }
}

export async function benchSlurm(): Promise<void> {
  const count = Number(process.env.BENCH_SLURM_RUNS ?? 100);
  if (!Number.isInteger(count) || count < SEQUENTIAL_RUNS) {
    throw new Error(`BENCH_SLURM_RUNS must be a whole number of at least ${SEQUENTIAL_RUNS} (got ${process.env.BENCH_SLURM_RUNS})`);
  }
  if (process.getuid?.() !== 0) {
    line('skipped', 'the local Slurm needs root (test/helpers/slurm-cluster.ts)');
    return;
  }
  const cluster = await startSlurmCluster();
  const root = mkdtempSync(path.join(os.tmpdir(), 'damnit-bench-slurm-'));
  try {
    const proposalPath = path.join(root, 'proposal');
    await execa(PYTHON, [path.join(PACKAGE_ROOT, 'fixtures', 'make_sample_proposal.py'), proposalPath, '--runs', String(count), '--trains', String(TRAINS)]);
    const concurrency = os.availableParallelism();
    const settings = new Map<string, string | number>([
      ['concurrent_jobs', concurrency],
      ['noncluster_cpus', 1],
      ['noncluster_mem', '1M'],
      ['slurm_time', '00:30:00'],
      ['slurm_worker_host', '127.0.0.1'],
      ['slurm_worker_idle', 60],
    ]);
    const source = { get: (key: string) => settings.get(key) };
    line('machine', `${concurrency} cores, load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}; Slurm node of 8 CPUs on it`);
    line('runs', `${count} runs of ${TRAINS} trains, fixtures/sample/context.py, ${concurrency} at a time`);
    const runs = Array.from({ length: count }, (_, i) => i + 1);
    const modes: [string, (env: RunEnvironment) => RunExecutor][] = [
      ['local warm worker', (env) => new WarmWorkerExecutor(env)],
      ['one Slurm job per run', (env) => new SlurmJobExecutor(env, { settings: source, env: cluster.env })],
      ['Slurm worker jobs', (env) => new SlurmWorkerPool(env, { settings: source, env: cluster.env, listenHost: '127.0.0.1' })],
    ];
    const sequentialOverhead = new Map<string, number>();
    for (const [name, make] of modes) {
      const env = environment(path.join(root, name.replaceAll(' ', '-')), proposalPath);
      const result = await measure(make(env), env, runs, concurrency);
      const ok = result.timings.filter((t) => t.ok).length;
      line(`${name}: ${count} runs`, `${(result.wallMs / 1000).toFixed(1)} s, ${(count / (result.wallMs / 1000)).toFixed(2)} runs/s (${ok} ok)`);
      line(`${name}: overhead per run, ${concurrency} at a time (median)`, ms(median(overheads(result.timings))));
      const sequential = median(overheads(result.sequential));
      sequentialOverhead.set(name, sequential);
      line(`${name}: overhead per run, one at a time (median of ${SEQUENTIAL_RUNS})`, ms(sequential));
    }
    const ratio = (sequentialOverhead.get('Slurm worker jobs') ?? NaN) / (sequentialOverhead.get('local warm worker') ?? NaN);
    line('ratio: overhead worker jobs / local warm worker', `${ratio.toFixed(1)}x  (goal <= ${OVERHEAD_RATIO_GOAL}x: ${ratio <= OVERHEAD_RATIO_GOAL ? 'met' : 'NOT met'})`);
    const perJob = (sequentialOverhead.get('one Slurm job per run') ?? NaN) / (sequentialOverhead.get('Slurm worker jobs') ?? NaN);
    line('ratio: overhead one job per run / worker jobs', `${perJob.toFixed(1)}x`);
  } finally {
    rmSync(root, { recursive: true, force: true });
    await cluster.stop();
  }
}

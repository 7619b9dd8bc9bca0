/**
 * `npm run bench`: start-up (bench/startup.ts), cost as the database grows (bench/scale.ts),
 * offline validation (bench/validate.ts), then run processing with a fresh interpreter per run
 * against warm workers (bench/runs.ts; BENCH_RUNS=N to shorten it), then processing on the local
 * Slurm, one job per run against warm worker jobs (bench/slurm.ts; BENCH_SLURM_RUNS=N).
 * BENCH_ONLY=startup,scale runs only the parts named. Figures and the machine they were measured
 * on: docs/performance.md.
 */
import os from 'node:os';
import { benchRuns } from './runs.js';
import { benchScale } from './scale.js';
import { benchSlurm } from './slurm.js';
import { benchStartup } from './startup.js';
import { benchValidate } from './validate.js';

const PARTS: [string, () => Promise<void>][] = [
  ['startup', benchStartup],
  ['scale', benchScale],
  ['validate', benchValidate],
  ['runs', benchRuns],
  ['slurm', benchSlurm],
];

const only = process.env.BENCH_ONLY?.split(',').map((p) => p.trim());
const unknown = only?.filter((p) => !PARTS.some(([name]) => name === p)) ?? [];
if (unknown.length > 0) throw new Error(`BENCH_ONLY: no part named ${unknown.join(', ')} (parts: ${PARTS.map(([n]) => n).join(', ')})`);

console.log(`bench: ${os.availableParallelism()} cores, ${os.cpus()[0]?.model ?? 'unknown CPU'}; uptime load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
for (const [name, part] of PARTS) {
  if (only === undefined || only.includes(name)) await part();
}
console.log(`bench: done; uptime load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);

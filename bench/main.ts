/**
 * `npm run bench`: offline validation speed (bench/validate.ts), then run processing with a
 * fresh interpreter per run against warm workers (bench/runs.ts; BENCH_RUNS=N to shorten it).
 * Figures and the machine they were measured on: docs/performance.md.
 */
import { benchRuns } from './runs.js';
import { benchValidate } from './validate.js';

await benchValidate();
await benchRuns();

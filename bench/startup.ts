/**
 * Start-up: how long the built CLI takes to answer `--help` and `db-config` (which opens
 * SQLite), beside `node -e 0`, the floor of any Node program. Runs are interleaved so that the
 * machine's load falls on all of them alike. Goal: within 2x of `node -e 0`.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PACKAGE_ROOT } from '../src/validate/package-files.js';
import { figureLine, median } from './report.js';

const CLI = path.join(PACKAGE_ROOT, 'dist', 'src', 'cli', 'main.js');
const REPEATS = 15;
const RATIO_GOAL = 2;

const line = figureLine('startup');

/** Wall and CPU (user + system) time of one process. */
function timed(args: string[], cwd: string): { wall: number; cpu: number } {
  const started = performance.now();
  const res = spawnSync('/usr/bin/time', ['-f', '%U %S', process.execPath, ...args], { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  const wall = performance.now() - started;
  if (res.status !== 0) throw new Error(`node ${args.join(' ')} failed: ${res.stderr.toString()}`);
  const [user = Number.NaN, system = Number.NaN] = res.stderr.toString().trim().split('\n').pop()?.split(' ').map(Number) ?? [];
  return { wall, cpu: (user + system) * 1000 };
}

export async function benchStartup(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'damnit-bench-startup-'));
  try {
    timed([CLI, 'proposal', '1234'], dir);
    const cases: [string, string[]][] = [
      ['node -e 0', ['-e', '0']],
      ['--help', [CLI, '--help']],
      ['db-config (opens runs.sqlite)', [CLI, 'db-config']],
      ['table --help', [CLI, 'table', '--help']],
    ];
    const times = cases.map(() => ({ wall: [] as number[], cpu: [] as number[] }));
    for (let i = 0; i < REPEATS; i++) {
      cases.forEach(([, args], k) => {
        const t = timed(args, dir);
        times[k]?.wall.push(t.wall);
        times[k]?.cpu.push(t.cpu);
      });
    }
    const floor = { wall: median(times[0]?.wall ?? []), cpu: median(times[0]?.cpu ?? []) };
    cases.forEach(([label], k) => {
      const wall = median(times[k]?.wall ?? []);
      const cpu = median(times[k]?.cpu ?? []);
      const ratio = wall / floor.wall;
      const goal = k === 0 ? '' : `  (goal <= ${RATIO_GOAL}x: ${ratio <= RATIO_GOAL ? 'met' : 'NOT met'})`;
      line(`${label} (median of ${REPEATS})`, `${wall.toFixed(0)} ms wall (${ratio.toFixed(1)}x), ${cpu.toFixed(0)} ms CPU (${(cpu / floor.cpu).toFixed(1)}x)${goal}`);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

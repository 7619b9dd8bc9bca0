/**
 * Offline validation speed: Pyodide's cold start, the warm time per file, and throughput on 100
 * context files, beside `python3 -m pyflakes` on the same files (Debian's Python: the reference
 * point of what a plain pyflakes run costs). One file of about 235 lines is also timed alone:
 * warm in our checker, and warm in pyflakes itself (a Python that has imported it, checking
 * the same file in a loop). Goals: a warm check under 20 ms for that file, and no slower than
 * pyflakes alone on it.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { ContextValidator } from '../src/validate/validator.js';
import { PACKAGE_ROOT } from '../src/validate/package-files.js';
import { figureLine } from './report.js';

const FILE_COUNT = 100;
const TARGET = { major: 3, minor: 11 } as const;
const REFERENCE_PYTHON = '/usr/bin/python3';
const WARM_GOAL_MS = 20;
/** syntheticContext(11) has 25 variables: about 235 lines. */
const TYPICAL_SEED = 11;
const REPEATS = 30;

/** pyflakes alone, warm: parse and check one file REPEATS times in a Python that imported it. */
const PYFLAKES_WARM = String.raw`
import ast, sys, time
from pyflakes.checker import Checker
text = open(sys.argv[1]).read()
times = []
for _ in range(int(sys.argv[2]) + 1):
    started = time.perf_counter()
    Checker(ast.parse(text, sys.argv[1]), filename=sys.argv[1])
    times.append((time.perf_counter() - started) * 1000)
times = sorted(times[1:])
print(times[len(times) // 2])
`;

/** A context file like those of a beamtime: imports, helpers, 10 to 40 variables with dependencies. */
function syntheticContext(seed: number): string {
  const count = 10 + (seed * 7) % 31;
  const lines = [
    `"""Context for proposal ${2000 + seed}."""`,
    'import numpy as np',
    'import xarray as xr',
    'from damnit_ctx import Cell, Skip, Variable',
    '',
    `XGM = "SA${1 + (seed % 3)}_XTD2_XGM/XGM/DOOCS"`,
    'DETECTOR = "SPB_DET_AGIPD1M-1/DET/{}CH0:xtdf"',
    '',
    'def _baseline(values, width=10):',
    '    return np.nanmedian(values[:width], axis=0)',
    '',
  ];
  for (let i = 0; i < count; i++) {
    const deps = i > 1 && i % 3 === 0 ? `, prev: "var#v${seed}_${i - 1}", n: "meta#run_number"` : '';
    const options = [`title="Quantity ${i} of ${seed}"`];
    if (i % 4 === 0) options.push('summary="mean"');
    if (i % 5 === 0) options.push('units="uJ"');
    if (i % 7 === 0) options.push('data="proc"');
    if (i % 11 === 0) options.push('cluster=True');
    lines.push(
      `@Variable(${options.join(', ')})`,
      `def v${seed}_${i}(run${deps}):`,
      `    """Quantity ${i}: a reduction of the XGM trace."""`,
      '    trace = run[XGM, "data.intensityTD"].xarray()',
      '    if trace.size == 0:',
      '        raise Skip("no XGM data")',
      `    result = trace[:, : ${10 + i}].mean(axis=1) - _baseline(trace.values)`,
      deps ? '    return Cell(result * prev, bold=n % 2 == 0)' : '    return result',
      '',
    );
  }
  return `${lines.join('\n')}\n`;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

const ms = (t: number): string => `${t.toFixed(1)} ms`;
const s = (t: number): string => `${(t / 1000).toFixed(2)} s`;

const line = figureLine('validate');

export async function benchValidate(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'damnit-bench-validate-'));
  try {
    mkdirSync(dir, { recursive: true });
    const files: string[] = [];
    for (let i = 0; i < FILE_COUNT; i++) {
      const file = path.join(dir, `context_${String(i).padStart(3, '0')}.py`);
      writeFileSync(file, syntheticContext(i));
      files.push(file);
    }
    const sources = files.map((f) => readFileSync(f));
    const lineCount = sources.reduce((n, b) => n + b.toString('utf8').split('\n').length, 0);
    line('corpus', `${FILE_COUNT} files, ${lineCount} lines (${Math.round(lineCount / FILE_COUNT)} per file)`);

    let t0 = performance.now();
    const bare = await ContextValidator.start({ pyflakes: false });
    const coldBare = performance.now() - t0;
    t0 = performance.now();
    const validator = await ContextValidator.start();
    const cold = performance.now() - t0;
    const pyflakes = validator.pyflakes.available ? `pyflakes ${validator.pyflakes.version}` : 'no pyflakes wheel';
    line('Pyodide cold start (checker only)', s(coldBare));
    line(`Pyodide cold start (checker + ${pyflakes})`, s(cold));

    try {
      let first = 0;
      t0 = performance.now();
      validator.check(sources[0] as Buffer, files[0] as string, TARGET);
      first = performance.now() - t0;
      line('first file after start', ms(first));

      const perFile: number[] = [];
      const per100Lines: number[] = [];
      let problems = 0;
      const start = performance.now();
      sources.forEach((source, i) => {
        const t = performance.now();
        problems += validator.check(source, files[i] as string, TARGET).diagnostics.length;
        const elapsed = performance.now() - t;
        perFile.push(elapsed);
        per100Lines.push((elapsed * 100) / source.toString('utf8').split('\n').length);
      });
      const total = performance.now() - start;
      perFile.sort((a, b) => a - b);
      per100Lines.sort((a, b) => a - b);
      const median = percentile(perFile, 50);
      line(
        'warm check per file (median / p95 / max)',
        `${ms(median)} / ${ms(percentile(perFile, 95))} / ${ms(perFile[perFile.length - 1] ?? Number.NaN)}` +
          `  (goal < ${WARM_GOAL_MS} ms: ${median < WARM_GOAL_MS ? 'met' : 'NOT met'})`,
      );
      line('warm check per 100 lines (median)', ms(percentile(per100Lines, 50)));
      const small = sources.filter((b) => b.toString('utf8').split('\n').length <= 120);
      const smallTimes = small
        .map((source) => {
          const t = performance.now();
          validator.check(source, 'small.py', TARGET);
          return performance.now() - t;
        })
        .sort((a, b) => a - b);
      line(`warm check, the ${small.length} files of 120 lines or fewer`, `${ms(percentile(smallTimes, 50))} median`);
      line(
        `${FILE_COUNT} files in one instance`,
        `${s(total)}  (${Math.round((FILE_COUNT * 1000) / total)} files/s, ${problems} diagnostics)`,
      );
      const typical = files[TYPICAL_SEED] as string;
      const typicalSource = sources[TYPICAL_SEED] as Buffer;
      const typicalLines = typicalSource.toString('utf8').split('\n').length;
      const typicalTimes: number[] = [];
      for (let i = 0; i < REPEATS; i++) {
        const t = performance.now();
        validator.check(typicalSource, typical, TARGET);
        typicalTimes.push(performance.now() - t);
      }
      const warmTypical = percentile(typicalTimes.sort((a, b) => a - b), 50);
      line(
        `warm check, one ${typicalLines}-line file (median of ${REPEATS})`,
        `${ms(warmTypical)}  (goal < ${WARM_GOAL_MS} ms: ${warmTypical < WARM_GOAL_MS ? 'met' : 'NOT met'})`,
      );
      // The same check without pyflakes: what our parse, compile() and reading cost, the rest
      // being pyflakes' checker inside Pyodide.
      const bareTimes: number[] = [];
      for (let i = 0; i < REPEATS; i++) {
        const t = performance.now();
        bare.check(typicalSource, typical, TARGET);
        bareTimes.push(performance.now() - t);
      }
      const warmBare = percentile(bareTimes.sort((a, b) => a - b), 50);
      line(
        `  of which without pyflakes (median of ${REPEATS})`,
        `${ms(warmBare)}  (pyflakes in Pyodide: the other ${ms(Math.max(0, warmTypical - warmBare))})`,
      );
      const alone = await execa(REFERENCE_PYTHON, ['-c', PYFLAKES_WARM, typical, String(REPEATS)], { reject: false });
      if (alone.exitCode === 0) {
        const pyflakesWarm = Number(alone.stdout.trim());
        line(
          `pyflakes alone, warm, the same file (median of ${REPEATS})`,
          `${ms(pyflakesWarm)}  (ours / pyflakes: ${(warmTypical / pyflakesWarm).toFixed(2)}x; goal <= 1x: ` +
            `${warmTypical <= pyflakesWarm ? 'met' : 'NOT met'})`,
        );
      } else {
        line('pyflakes alone, warm', `skipped: ${REFERENCE_PYTHON} has no pyflakes`);
      }
    } finally {
      validator.close();
      bare.close();
    }

    const reference = await execa(REFERENCE_PYTHON, ['-c', 'import pyflakes; print(pyflakes.__version__)'], { reject: false });
    if (reference.exitCode !== 0) {
      line('python3 -m pyflakes (reference)', `skipped: ${REFERENCE_PYTHON} has no pyflakes`);
    } else {
      t0 = performance.now();
      await execa(REFERENCE_PYTHON, ['-m', 'pyflakes', ...files], { reject: false });
      const all = performance.now() - t0;
      t0 = performance.now();
      await execa(REFERENCE_PYTHON, ['-m', 'pyflakes', files[0] as string], { reject: false });
      const one = performance.now() - t0;
      line(
        `python3 -m pyflakes ${reference.stdout.trim()}, ${FILE_COUNT} files`,
        `${s(all)}  (${ms(all / FILE_COUNT)} per file, one process)`,
      );
      line(`python3 -m pyflakes ${reference.stdout.trim()}, 1 file`, `${s(one)}  (mostly interpreter start)`);
    }

    const cliMain = path.join(PACKAGE_ROOT, 'dist', 'src', 'cli', 'main.js');
    t0 = performance.now();
    const cli = await execa(process.execPath, [cliMain, 'check', '--json', ...files], {
      reject: false,
      env: { NO_COLOR: '1' },
    });
    const whole = performance.now() - t0;
    line(`amore-proto check on ${FILE_COUNT} files (whole CLI)`, `${s(whole)}  (exit ${cli.exitCode})`);
    t0 = performance.now();
    const one = await execa(process.execPath, [cliMain, 'check', '--json', files[TYPICAL_SEED] as string], {
      reject: false,
      env: { NO_COLOR: '1' },
    });
    line('amore-proto check on 1 file (whole CLI, cold)', `${s(performance.now() - t0)}  (exit ${one.exitCode})`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

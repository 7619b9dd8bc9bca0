/**
 * Offline validation of context files in Pyodide: no Python installation is needed.
 *
 * One Pyodide instance checks any number of files. It runs
 * python-shim/_damnit_shim/static_reader.py, which applies the same variable rules as the real
 * loader (python-shim/_damnit_shim/ctx_rules.py) to what the AST shows, and pyflakes when its
 * wheel is in the local cache (scripts/fetch-pyflakes.sh).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { loadPyodide, type PyodideAPI } from 'pyodide';
import type { PythonVersion } from './diagnostics.js';
import { type StaticReading, StaticReading as StaticReadingSchema } from './static-reading.js';
import { DEFAULT_WHEELS_DIR, PYTHON_SHIM_DIR, pyodideIndexDir } from './package-files.js';

/** Overrides where the pyflakes wheel is looked for (tests, unusual installs). */
export const WHEELS_DIR_ENV = 'DAMNIT_WHEELS_DIR';

/**
 * The shim's package, with only the modules static_reader needs, copied into Pyodide's file system,
 * and damnit_ctx.py next to it: contexts with groups and pipelines are checked with the real
 * Group, Pipeline and loader code (static_groups.py).
 */
const SHIM_PACKAGE = '_damnit_shim';
const SHIM_MODULES = [
  '__init__.py',
  'ctx_rules.py',
  'static_reader.py',
  'static_variables.py',
  'static_groups.py',
  'static_stand_ins.py',
  'groups.py',
  'pipeline.py',
  'compiled.py',
];
const SHIM_TOP_MODULES = ['damnit_ctx.py'];
const PYODIDE_SHIM_DIR = '/damnit/python-shim';

export type PyflakesStatus =
  | { available: true; version: string; wheel: string }
  | { available: false; reason: string };

/** A failure of the validator itself (not a problem of the checked file). */
export class ValidatorError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ValidatorError';
  }
}

/**
 * The last line of a Python traceback. A PythonError's own message holds the whole traceback, and
 * an uncaught one makes Node print a megabyte of minified Pyodide source: always go through here.
 */
function pythonErrorSummary(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  const lines = text.trim().split('\n').filter((l) => l.trim() !== '');
  return lines[lines.length - 1]?.trim().slice(0, 500) ?? 'unknown error';
}

const WHEEL_NAME = /^pyflakes-(\d+)\.(\d+)(?:\.(\d+))?-[^-]+-[^-]+-[^-]+\.whl$/;
/** pyflakes before 3 fails on the Python (3.12+) Pyodide runs. */
const MIN_PYFLAKES_MAJOR = 3;

/** The newest usable pyflakes wheel in `dir`, or why there is none. */
export function findPyflakesWheel(dir: string): { wheel: string } | { reason: string } {
  if (!existsSync(dir)) return { reason: `${dir} does not exist` };
  const candidates = readdirSync(dir)
    .map((name) => ({ name, match: WHEEL_NAME.exec(name) }))
    .filter((c): c is { name: string; match: RegExpExecArray } => c.match !== null)
    .map((c) => ({ name: c.name, version: [1, 2, 3].map((i) => Number(c.match[i] ?? 0)) }))
    .filter((c) => (c.version[0] ?? 0) >= MIN_PYFLAKES_MAJOR)
    .sort((a, b) => compareVersions(b.version, a.version));
  const best = candidates[0];
  if (!best) return { reason: `no pyflakes ${MIN_PYFLAKES_MAJOR}.x or newer wheel in ${dir}` };
  return { wheel: path.join(dir, best.name) };
}

function compareVersions(a: number[], b: number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

export interface ValidatorOptions {
  /** Where to look for the pyflakes wheel; default $DAMNIT_WHEELS_DIR, else .cache/wheels. */
  wheelsDir?: string;
  /** Skip pyflakes even when its wheel is there. */
  pyflakes?: boolean;
}

type CheckSourceJson = ((data: Uint8Array, file: string, minor: number, usePyflakes: boolean) => string) & {
  destroy(): void;
};

export class ContextValidator {
  private constructor(
    private readonly checkSourceJson: CheckSourceJson,
    readonly pyflakes: PyflakesStatus,
  ) {}

  /** Starts Pyodide (about 2.5 s) and loads the checker, and pyflakes when available. */
  static async start(opts: ValidatorOptions = {}): Promise<ContextValidator> {
    // The checker prints nothing; whatever Python might print must not mix with our output.
    const discard = (): void => {};
    let pyodide: PyodideAPI;
    try {
      pyodide = await loadPyodide({ indexURL: pyodideIndexDir(), stdout: discard, stderr: discard });
    } catch (err) {
      throw new ValidatorError(`could not start Pyodide: ${pythonErrorSummary(err)}`);
    }
    pyodide.FS.mkdirTree(`${PYODIDE_SHIM_DIR}/${SHIM_PACKAGE}`);
    for (const module of SHIM_MODULES) {
      pyodide.FS.writeFile(
        `${PYODIDE_SHIM_DIR}/${SHIM_PACKAGE}/${module}`,
        readFileSync(path.join(PYTHON_SHIM_DIR, SHIM_PACKAGE, module)),
      );
    }
    for (const module of SHIM_TOP_MODULES) {
      pyodide.FS.writeFile(`${PYODIDE_SHIM_DIR}/${module}`, readFileSync(path.join(PYTHON_SHIM_DIR, module)));
    }
    const pyflakes = opts.pyflakes === false
      ? ({ available: false, reason: 'turned off' } as const)
      : loadPyflakes(pyodide, opts.wheelsDir ?? process.env[WHEELS_DIR_ENV] ?? DEFAULT_WHEELS_DIR);
    let checkSourceJson: CheckSourceJson;
    try {
      pyodide.runPython(`import sys\nsys.path.insert(0, ${JSON.stringify(PYODIDE_SHIM_DIR)})`);
      checkSourceJson = pyodide.pyimport(`${SHIM_PACKAGE}.static_reader`).check_source_json as CheckSourceJson;
    } catch (err) {
      throw new ValidatorError(`could not load static_reader.py in Pyodide: ${pythonErrorSummary(err)}`);
    }
    return new ContextValidator(checkSourceJson, pyflakes);
  }

  /** Everything the source of one context file shows, for Python `target`. */
  check(source: Uint8Array, file: string, target: PythonVersion): StaticReading {
    let json: string;
    try {
      // Pyodide refuses a Node Buffer: hand it a plain view of the same bytes.
      const bytes = new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
      json = this.checkSourceJson(bytes, file, target.minor, this.pyflakes.available);
    } catch (err) {
      throw new ValidatorError(`the validator failed on ${file}: ${pythonErrorSummary(err)}`);
    }
    const parsed = StaticReadingSchema.safeParse(JSON.parse(json));
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new ValidatorError(
        `the validator gave an invalid result for ${file} (${issue?.path.join('.')}: ${issue?.message})`,
      );
    }
    return parsed.data;
  }

  /** Frees the Python objects held; the instance is not usable afterwards. */
  close(): void {
    this.checkSourceJson.destroy();
  }
}

function loadPyflakes(pyodide: PyodideAPI, wheelsDir: string): PyflakesStatus {
  const found = findPyflakesWheel(wheelsDir);
  if ('reason' in found) return { available: false, reason: found.reason };
  try {
    const sitePackages = pyodide.runPython("import sysconfig; sysconfig.get_paths()['purelib']") as string;
    // unpackArchive refuses a Node Buffer: give it a plain Uint8Array.
    pyodide.unpackArchive(new Uint8Array(readFileSync(found.wheel)), 'wheel', { extractDir: sitePackages });
    const version = pyodide.runPython('import pyflakes, pyflakes.checker\npyflakes.__version__') as string;
    return { available: true, version, wheel: found.wheel };
  } catch (err) {
    return { available: false, reason: `${path.basename(found.wheel)} did not load: ${pythonErrorSummary(err)}` };
  }
}

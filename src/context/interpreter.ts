/**
 * Which Python runs the user's context, and whether it can (docs/context-python.md).
 *
 * The context runs in the interpreter the user configured (`metameta.context_python`), so that
 * packages of their own environment are importable. Before starting the shim we probe it once:
 * a missing, non-executable, non-Python or too old interpreter is one clear error that says how
 * to change it, rather than a confusing failure of the shim.
 */
import { existsSync, statSync } from 'node:fs';
import { execa } from 'execa';
import { z } from 'zod';
import { CliError } from '../cli/errors.js';
import { programName } from '../program-name.js';

export const MIN_PYTHON_VERSION: readonly [number, number] = [3, 9];
export const PROBE_TIMEOUT_MS = 10_000;
/** Environment variable naming the interpreter when a database has no `context_python`. */
export const CONTEXT_PYTHON_ENV = 'DAMNIT_CONTEXT_PYTHON';
const DEBIAN_PYTHON = '/usr/bin/python3';

export type ContextPythonSource = 'context_python' | typeof CONTEXT_PYTHON_ENV | 'default';

export interface ContextPythonChoice {
  python: string;
  /** Where the choice came from, so that an error can say what to change. */
  source: ContextPythonSource;
}

/**
 * The interpreter for a database: its `context_python` setting when set, else
 * $DAMNIT_CONTEXT_PYTHON, else /usr/bin/python3 when it exists, else `python3` on PATH.
 */
export function chooseContextPython(
  configured: unknown,
  env: NodeJS.ProcessEnv = process.env,
): ContextPythonChoice {
  if (configured !== null && configured !== undefined && String(configured).trim() !== '') {
    return { python: String(configured).trim(), source: 'context_python' };
  }
  const fromEnv = env[CONTEXT_PYTHON_ENV]?.trim();
  if (fromEnv) return { python: fromEnv, source: CONTEXT_PYTHON_ENV };
  return { python: existsSync(DEBIAN_PYTHON) ? DEBIAN_PYTHON : 'python3', source: 'default' };
}

/** Why an interpreter cannot be used, in words that follow its path. */
export class InterpreterProblem extends Error {
  constructor(
    readonly python: string,
    readonly problem: string,
    readonly output?: string,
  ) {
    super(`${python} ${problem}`);
    this.name = 'InterpreterProblem';
  }
}

/**
 * Runs a Python snippet that prints one JSON object as its last line of stdout, and returns that
 * object validated against `schema`. Throws InterpreterProblem when the interpreter cannot run it.
 */
export async function runPythonSnippet<T>(
  python: string,
  snippet: string,
  schema: z.ZodType<T>,
  opts: { timeoutMs?: number; cwd?: string } = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? PROBE_TIMEOUT_MS;
  const result = await execa(python, ['-c', snippet], {
    reject: false,
    timeout: timeoutMs,
    stdin: 'ignore',
    cwd: opts.cwd,
    // The interpreter's answer is small; a python that floods its output is not one we can use.
    maxBuffer: 1_000_000,
  });
  if (result.code === 'ENOENT' || (result.failed && result.exitCode === undefined && result.signal === undefined && !result.timedOut)) {
    throw new InterpreterProblem(python, spawnProblem(python, result.code));
  }
  if (result.timedOut) {
    throw new InterpreterProblem(python, `did not answer within ${timeoutMs / 1000} s`);
  }
  const output = `${String(result.stdout)}\n${String(result.stderr)}`.trim();
  const lastLine = String(result.stdout).trim().split('\n').pop() ?? '';
  let parsed: unknown;
  try {
    parsed = JSON.parse(lastLine);
  } catch {
    parsed = undefined;
  }
  const checked = schema.safeParse(parsed);
  if (result.exitCode !== 0 || !checked.success) {
    throw new InterpreterProblem(python, 'is not a Python interpreter (it did not run a Python snippet)', output);
  }
  return checked.data;
}

function spawnProblem(python: string, code: string | undefined): string {
  const isPath = python.includes('/');
  if (code === 'ENOENT') return isPath ? 'does not exist' : 'was not found on PATH';
  if (isPath && existsSync(python) && statSync(python).isDirectory()) return 'is a directory, not a program';
  if (code === 'EACCES') return 'is not executable (no permission to run it)';
  if (code === 'ENOEXEC') return 'is not a program this system can run';
  return `could not be started (${code ?? 'unknown error'})`;
}

export const PythonInfo = z.object({
  version: z.string(),
  version_info: z.tuple([z.number().int(), z.number().int(), z.number().int()]),
  executable: z.string(),
  prefix: z.string(),
});
export type PythonInfo = z.infer<typeof PythonInfo>;

/** Valid Python 2 and 3, so that an old interpreter is recognised as one and reported as too old. */
const VERSION_SNIPPET = [
  'import json, sys',
  'print(json.dumps({"version": "%d.%d.%d" % tuple(sys.version_info[:3]),',
  ' "version_info": list(sys.version_info[:3]), "executable": sys.executable, "prefix": sys.prefix}))',
].join('\n');

const probes = new Map<string, Promise<PythonInfo>>();

/** The interpreter's version, probed once per path per process (failures are not remembered). */
export function probePython(python: string, opts: { timeoutMs?: number } = {}): Promise<PythonInfo> {
  let probe = probes.get(python);
  if (!probe) {
    probe = runPythonSnippet(python, VERSION_SNIPPET, PythonInfo, opts).then((info) => {
      const [major, minor] = info.version_info;
      const [minMajor, minMinor] = MIN_PYTHON_VERSION;
      if (major < minMajor || (major === minMajor && minor < minMinor)) {
        throw new InterpreterProblem(
          python,
          `is Python ${info.version}; context files need Python ${minMajor}.${minMinor} or newer`,
        );
      }
      return info;
    });
    probes.set(python, probe);
    probe.catch(() => probes.delete(python));
  }
  return probe;
}

function howToChange(source: ContextPythonSource): string {
  const command = `'${programName()} db-config context_python /path/to/python'`;
  switch (source) {
    case 'context_python':
      return `change this database's interpreter with ${command}`;
    case CONTEXT_PYTHON_ENV:
      return `it comes from $${CONTEXT_PYTHON_ENV}: change that, or choose one for this database with ${command}`;
    case 'default':
      return `choose one for this database with ${command}`;
  }
}

export interface ContextPython extends ContextPythonChoice {
  info: PythonInfo;
}

/** The database's interpreter, probed; a CliError saying what is wrong and how to fix it otherwise. */
export async function requireContextPython(
  configured: unknown,
  opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<ContextPython> {
  const choice = chooseContextPython(configured, opts.env);
  try {
    return { ...choice, info: await probePython(choice.python, opts) };
  } catch (err) {
    if (!(err instanceof InterpreterProblem)) throw err;
    throw new CliError(
      `the context Python ${err.python} ${err.problem}; ${howToChange(choice.source)}`,
      1,
      err.output,
    );
  }
}

/**
 * What an environment needs to run contexts: the packages the seed lists (extra_data, pyyaml,
 * requests, scipy) and the two the shim itself imports to write results (numpy, h5py).
 */
export const CONTEXT_PACKAGES: readonly ContextPackage[] = [
  { module: 'extra_data', pip: 'extra_data' },
  { module: 'yaml', pip: 'pyyaml' },
  { module: 'requests', pip: 'requests' },
  { module: 'scipy', pip: 'scipy' },
  { module: 'numpy', pip: 'numpy' },
  { module: 'h5py', pip: 'h5py' },
];

export interface ContextPackage {
  /** The name `import` uses. */
  module: string;
  /** The name `pip install` uses. */
  pip: string;
}

export interface PackageStatus extends ContextPackage {
  /** `__version__` of an importable package, '' when it has none; null when it cannot be imported. */
  version: string | null;
  /** Why the import failed (`ModuleNotFoundError: No module named 'scipy'`); null when it worked. */
  error: string | null;
}

/** Importing extra_data and scipy from a cold network file system can take a while. */
export const PACKAGE_PROBE_TIMEOUT_MS = 60_000;

const PackageProbeAnswer = z.record(
  z.string(),
  z.object({ version: z.string().nullable(), error: z.string().nullable() }),
);

/**
 * Imports each package in `python` (a real import: an installation that is present but broken
 * counts as missing) and reports its version or why it failed. Throws InterpreterProblem when
 * the interpreter cannot run the probe at all.
 */
export async function probePackages(
  python: string,
  packages: readonly ContextPackage[] = CONTEXT_PACKAGES,
  opts: { timeoutMs?: number } = {},
): Promise<PackageStatus[]> {
  const modules = packages.map((p) => p.module);
  // Module names are identifiers, so their JSON list is also a Python list literal.
  const snippet = [
    'import importlib, json',
    'answer = {}',
    `for name in ${JSON.stringify(modules)}:`,
    '    try:',
    '        version = getattr(importlib.import_module(name), "__version__", "")',
    '        answer[name] = {"version": str(version), "error": None}',
    '    except Exception as e:',
    '        answer[name] = {"version": None, "error": "%s: %s" % (type(e).__name__, e)}',
    'print(json.dumps(answer))',
  ].join('\n');
  const answer = await runPythonSnippet(python, snippet, PackageProbeAnswer, {
    timeoutMs: opts.timeoutMs ?? PACKAGE_PROBE_TIMEOUT_MS,
  });
  return packages.map((p) => {
    const reported = answer[p.module];
    return reported ? { ...p, ...reported } : { ...p, version: null, error: `the probe did not report ${p.module}` };
  });
}

export interface EnvironmentReport {
  info: PythonInfo;
  packages: PackageStatus[];
  missing: PackageStatus[];
}

/** The interpreter's version and which context packages it lacks; InterpreterProblem if it cannot be used. */
export async function probeEnvironment(python: string, opts: { timeoutMs?: number } = {}): Promise<EnvironmentReport> {
  const info = await probePython(python);
  const packages = await probePackages(python, CONTEXT_PACKAGES, opts);
  return { info, packages, missing: packages.filter((p) => p.version === null) };
}

/** `pip install` for the missing packages, run with the interpreter itself so that they land in its environment. */
export function installCommand(python: string, missing: readonly ContextPackage[]): string {
  const quoted = /^[\w@%+=:,./-]+$/.test(python) ? python : `'${python.replaceAll("'", "'\\''")}'`;
  return `${quoted} -m pip install ${missing.map((p) => p.pip).join(' ')}`;
}

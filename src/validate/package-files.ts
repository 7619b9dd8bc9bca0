import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The installed package's root (where package.json is), from src/ or from dist/src/. */
function findPackageRoot(start: string): string {
  let dir = start;
  while (!existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`damnit-ts is installed without its package.json (looked above ${start})`);
    dir = parent;
  }
  return dir;
}

export const PACKAGE_ROOT = findPackageRoot(path.dirname(fileURLToPath(import.meta.url)));

/** The Python files that run in the user's interpreter, and in Pyodide for validation. */
export const PYTHON_SHIM_DIR = path.join(PACKAGE_ROOT, 'python-shim');

/** Where the install step puts the pyflakes wheel (scripts/fetch-pyflakes.sh). */
export const DEFAULT_WHEELS_DIR = path.join(PACKAGE_ROOT, '.cache', 'wheels');

/** The Pyodide distribution shipped in the npm package, loaded from disk, never from the network. */
export function pyodideIndexDir(): string {
  return path.dirname(fileURLToPath(import.meta.resolve('pyodide')));
}

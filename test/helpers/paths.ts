import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function findRepoRoot(start: string): string {
  let dir = start;
  while (!existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${start}`);
    dir = parent;
  }
  return dir;
}

export const REPO_ROOT = findRepoRoot(path.dirname(fileURLToPath(import.meta.url)));
export const CLI_PATH = path.join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
export const FIXTURES_DIR = path.join(REPO_ROOT, 'fixtures');

/** The interpreter tests run contexts with: Debian's Python, which has numpy, h5py and extra_data. */
export const TEST_PYTHON = process.env.DAMNIT_TEST_PYTHON ?? '/usr/bin/python3';

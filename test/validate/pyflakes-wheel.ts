// The pyflakes wheel the validator loads: fetched with the project's own script when missing.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { findPyflakesWheel } from '../../src/validate/validator.js';
import { DEFAULT_WHEELS_DIR } from '../../src/validate/package-files.js';
import { REPO_ROOT } from '../helpers/paths.js';

export function ensurePyflakesWheel(): string {
  let found = findPyflakesWheel(DEFAULT_WHEELS_DIR);
  if ('reason' in found) {
    execFileSync('bash', [path.join(REPO_ROOT, 'scripts', 'fetch-pyflakes.sh')], { stdio: 'inherit' });
    found = findPyflakesWheel(DEFAULT_WHEELS_DIR);
  }
  if ('reason' in found) throw new Error(`no pyflakes wheel after scripts/fetch-pyflakes.sh: ${found.reason}`);
  return found.wheel;
}

import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { CLI_PATH } from './paths.js';
import { commandAs } from './users.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs the built CLI as a user would, in `cwd`, and never throws on a non-zero exit. `entry`
 * runs it through another path, e.g. a link named as it is installed (`cliLinks`); `as` runs it
 * as another Unix user (test/helpers/users.ts).
 */
export async function runCli(
  args: string[],
  opts: { cwd: string; env?: Record<string, string>; input?: string; timeoutMs?: number; entry?: string; as?: string },
): Promise<CliResult> {
  const result = await execa(...commandAs(opts.as, [process.execPath, opts.entry ?? CLI_PATH, ...args]), {
    cwd: opts.cwd,
    // No broker can be reached here: tests that look at update messages set AMORE_BROKER themselves.
    env: { NO_COLOR: '1', AMORE_BROKER: 'none', ...opts.env },
    input: opts.input ?? '',
    reject: false,
    timeout: opts.timeoutMs ?? 120_000,
    stripFinalNewline: false,
  });
  return { code: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) };
}

/** A fresh temporary directory, removed by the returned cleanup function. */
export function makeTempDir(prefix = 'damnit-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Links named as the CLI is installed (`amore-proto`, `damnit`) in `dir`/bin, to the built CLI. */
export function cliLinks(dir: string): { 'amore-proto': string; damnit: string } {
  const bin = path.join(dir, 'bin');
  mkdirSync(bin, { recursive: true });
  const link = (name: string): string => {
    const file = path.join(bin, name);
    symlinkSync(CLI_PATH, file);
    return file;
  };
  return { 'amore-proto': link('amore-proto'), damnit: link('damnit') };
}

import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { CLI_PATH } from './paths.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI as a user would, in `cwd`, and never throws on a non-zero exit. */
export async function runCli(
  args: string[],
  opts: { cwd: string; env?: Record<string, string>; input?: string; timeoutMs?: number },
): Promise<CliResult> {
  const result = await execa(process.execPath, [CLI_PATH, ...args], {
    cwd: opts.cwd,
    env: { NO_COLOR: '1', ...opts.env },
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

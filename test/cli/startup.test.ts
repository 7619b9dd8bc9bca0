// Start-up (src/cli/main.ts, src/cli/commands/): help and usage load no heavy package, and each
// command loads only what it uses. What is loaded is observed with a module-resolution hook;
// how long it takes is for the benchmark (bench/startup.ts), never for a test.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { execa } from 'execa';
import { CLI_PATH } from '../helpers/paths.js';
import { makeTempDir, runCli } from '../helpers/cli.js';

const tmp = makeTempDir('damnit-startup-');
after(() => tmp.cleanup());

/** The packages a command must load only when it uses them. */
const HEAVY = ['better-sqlite3', 'chokidar', 'execa', 'kafkajs', 'node-pty', 'p-queue', 'pino', 'pyodide', 'yaml', 'zod'];

const TRACE_HOOKS = `
import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  appendFileSync(process.env.DAMNIT_TRACE_MODULES, resolved.url + '\\n');
  return resolved;
}`;
const TRACE = `data:text/javascript,${encodeURIComponent(
  `import { register } from 'node:module'; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(TRACE_HOOKS)}`)});`,
)}`;

/** The heavy packages that running the CLI with `args` in `cwd` loads. */
async function heavyPackagesLoaded(args: string[], cwd: string): Promise<string[]> {
  const trace = path.join(tmp.dir, 'trace.txt');
  rmSync(trace, { force: true });
  const res = await execa(process.execPath, ['--import', TRACE, CLI_PATH, ...args], {
    cwd,
    env: { NO_COLOR: '1', DAMNIT_TRACE_MODULES: trace },
    reject: false,
  });
  assert.ok(res.exitCode === 0 || res.exitCode === 2, `${args.join(' ')}: exit ${res.exitCode}: ${res.stderr}`);
  const urls = readFileSync(trace, 'utf8').split('\n');
  assert.ok(urls.some((u) => u.endsWith('/commander/esm.mjs') || u.includes('/commander/')), 'the trace sees packages');
  return HEAVY.filter((pkg) => urls.some((u) => u.includes(`/node_modules/${pkg}/`)));
}

describe('start-up loads only what the command uses', () => {
  const db = path.join(tmp.dir, 'db');
  mkdirSync(db);

  it('--help, a usage error and every command help load none of the heavy packages', async () => {
    const help = await runCli(['--help'], { cwd: tmp.dir });
    const commands = [...help.stdout.matchAll(/^ {2}([a-z-]+) /gm)].map((m) => m[1] as string);
    assert.ok(commands.includes('table') && commands.includes('backend'), help.stdout);
    for (const args of [['--help'], ['no-such-command'], ...commands.map((c) => [c, '--help']), ['backend', 'start', '--help']]) {
      assert.deepEqual(await heavyPackagesLoaded(args, tmp.dir), [], args.join(' '));
    }
  });

  it('db-config loads SQLite and nothing else heavy; check loads Pyodide', async () => {
    assert.equal((await runCli(['proposal', '1234'], { cwd: db })).code, 0);
    assert.deepEqual(await heavyPackagesLoaded(['db-config'], db), ['better-sqlite3']);
    assert.deepEqual(await heavyPackagesLoaded(['table'], db), ['better-sqlite3']);
    writeFileSync(path.join(db, 'ctx.py'), 'x = 1\n');
    assert.ok((await heavyPackagesLoaded(['check', '--python-version', '3.11', 'ctx.py'], db)).includes('pyodide'));
  });
});

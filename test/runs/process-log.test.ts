/** process_logs/r<R>-p<P>.out, as reprocess and the backend write them (through the built CLI). */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { execa } from 'execa';
import { makeTempDir, runCli } from '../helpers/cli.js';
import { CLI_PATH } from '../helpers/paths.js';
import { eventually, makeDatabase, values } from '../listener/helpers.js';

const tmp = makeTempDir('damnit-process-log-');
after(() => tmp.cleanup());

const CONTEXT = `from damnit_ctx import Variable

@Variable(title='Value')
def value(run):
    print('hello from value')
    return 3

@Variable(title='Broken')
def broken(run):
    raise KeyError('no such source')
`;

const HEADER = new RegExp(`^----- Processing r5 \\(p1234\\) as ${os.userInfo().username} on ${os.hostname()} \\(subprocess\\) -----$`, 'gm');

function readProcessLog(db: string, run: number): string {
  const file = path.join(db, 'process_logs', `r${run}-p1234.out`);
  return existsSync(file) ? readFileSync(file, 'utf8') : '';
}

describe('process logs', () => {
  test("each reprocess appends the run's output, its tracebacks, timings and how it ended", async () => {
    const db = await makeDatabase(path.join(tmp.dir, 'reprocess'), CONTEXT);
    for (let i = 0; i < 2; i++) {
      const res = await runCli(['reprocess', '5', '--mock'], { cwd: db });
      assert.equal(res.code, 0, res.stderr);
      assert.match(res.stderr, /^r5 \(p1234\): done in .*: 2 variables, 1 error\nr5 broken: KeyError: 'no such source'\n/m);
    }
    const log = readProcessLog(db, 5);
    assert.equal(log.match(HEADER)?.length, 2, log);
    assert.match(log, /^hello from value$/m);
    assert.match(log, /^INFO:ctxrunner:Computed value in \d+\.\d{3} s$/m);
    assert.match(log, /^Traceback \(most recent call last\):$/m);
    assert.match(log, /^KeyError: 'no such source'$/m);
    assert.equal(log.match(/^----- done in \d+\.\d s: 2 variables, 1 error\n {2}broken: KeyError: 'no such source'$/gm)?.length, 2, log);
  });

  test('reprocess --watch writes what the terminal shows', async () => {
    const db = await makeDatabase(path.join(tmp.dir, 'watch'), CONTEXT);
    const res = await runCli(['reprocess', '5', '--mock', '--watch'], { cwd: db });
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /^r5 broken: KeyError: 'no such source'$/m);
    const log = readProcessLog(db, 5);
    assert.equal(log.match(HEADER)?.length, 1, log);
    assert.match(log, /^hello from value$/m);
    assert.doesNotMatch(log, /\r/);
    assert.match(log, /^----- done in \d+\.\d s: 2 variables, 1 error\n {2}broken: KeyError: 'no such source'\n$/m);
  });

  test('the backend writes them too, readable while the run is still going', async () => {
    const context = `from pathlib import Path
import time
from damnit_ctx import Variable

@Variable(title='Slow')
def slow(run):
    print('waiting for go', flush=True)
    while not Path('go').exists():
        time.sleep(0.05)
    return 1
`;
    const db = await makeDatabase(path.join(tmp.dir, 'listen'), context, { runs: 1 });
    const backend = execa(process.execPath, [CLI_PATH, 'listen', '--test'], { cwd: db, stdin: 'pipe', reject: false, timeout: 300_000 });
    backend.stdin?.write('1234 1 raw\n');
    const during = await eventually('the first output in the process log', () => {
      const log = readProcessLog(db, 1);
      return log.includes('waiting for go') ? log : undefined;
    });
    assert.doesNotMatch(during, /----- done/);
    writeFileSync(path.join(db, 'go'), '');
    backend.stdin?.end();
    const res = await backend;
    assert.equal(res.exitCode, 0, String(res.stderr));
    assert.match(readProcessLog(db, 1), /waiting for go\n(.*\n)*----- done in \d+\.\d s: 1 variable\n$/);
    assert.equal(values(db).get('r1.slow'), 1);
  });

  test('a process_logs that cannot be written: one warning, the runs processed and recorded', async () => {
    const db = await makeDatabase(path.join(tmp.dir, 'unwritable'), CONTEXT);
    writeFileSync(path.join(db, 'process_logs'), 'a file in the way\n');
    const res = await runCli(['reprocess', '1', '2', '--mock'], { cwd: db });
    assert.equal(res.code, 0, res.stderr);
    const warnings = res.stderr.split('\n').filter((l) => l.startsWith('warning: '));
    assert.equal(warnings.length, 1, res.stderr);
    assert.match(warnings[0] as string, /^warning: cannot write the process log .*process_logs\/r[12]-p1234\.out \(.*\): processing goes on without it$/);
    assert.equal(values(db).get('r1.value'), 3);
    assert.equal(values(db).get('r2.value'), 3);
  });
});

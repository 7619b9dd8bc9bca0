import assert from 'node:assert/strict';
import { copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { DatabaseDir } from '../../src/database-dir.js';
import { shutdownSupervisord } from '../../src/supervisor/control.js';
import { makeTempDir, runCli } from '../helpers/cli.js';
import { supervisorctl } from '../helpers/supervisor.js';
import { REPO_ROOT } from '../helpers/paths.js';
import { makeSampleProposal } from '../helpers/python.js';
import { eventually, jobRows, makeDatabase, readLog, values } from '../listener/helpers.js';
import { processAlive } from '../../src/processes.js';

const tmp = makeTempDir('damnit-backend-');
after(() => tmp.cleanup());

/** The backend's pid while Supervisor reports it RUNNING. */
async function runningPid(db: string): Promise<number | undefined> {
  const { out } = await supervisorctl(db, ['status', 'damnit']);
  const match = /^damnit\s+RUNNING\s+pid (\d+)/m.exec(out);
  return match ? Number(match[1]) : undefined;
}

describe('the backend under a real supervisord', () => {
  const root = path.join(tmp.dir, 'proposal');
  const marks = path.join(tmp.dir, 'marks');
  const release = path.join(tmp.dir, 'release');
  let db: string;

  // Run 3 waits (leaving a mark with its pid) until the release file exists.
  const context = `import os, time
from damnit_ctx import Variable

@Variable(title="Value")
def value(run, n: "meta#run_number"):
    if n == 3 and not os.path.exists(${JSON.stringify(release)}):
        os.makedirs(${JSON.stringify(marks)}, exist_ok=True)
        open(os.path.join(${JSON.stringify(marks)}, "started-%d" % os.getpid()), "w").close()
        while not os.path.exists(${JSON.stringify(release)}):
            time.sleep(0.05)
    return n * 10
`;

  before(async () => {
    db = await makeDatabase(root, context);
  });
  after(async () => {
    if (db) await shutdownSupervisord(new DatabaseDir(db)).catch(() => undefined);
  });

  test('status before any start: not set up', async () => {
    const res = await runCli(['backend', 'status'], { cwd: db });
    assert.equal(res.code, 3);
    assert.match(res.stdout, /^damnit: not set up to run under Supervisor here \(no supervisord\.conf\)$/m);
  });

  test('listen --daemonize starts it under Supervisor; new run directories are processed', async () => {
    const res = await runCli(['listen', '--daemonize', '--settle', '0.3', '--rescan', '0.2'], { cwd: db });
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /^damnit: RUNNING \(pid \d+, uptime /m);
    const conf = path.join(db, 'supervisord.conf');
    assert.equal(statSync(conf).mode & 0o777, 0o600);
    assert.match(readFileSync(conf, 'utf8'), /^command=\S+node\S* \S+\/dist\/src\/cli\/main\.js listen --source fs --log-format text --settle 0\.3 --rescan 0\.2$/m);
    assert.ok(await runningPid(db), 'supervisorctl -c supervisord.conf status damnit says RUNNING');

    await makeSampleProposal(root, ['--runs', '2', '--trains', '3']);
    await eventually('runs 1 and 2 recorded', () => values(db).get('r2.value') === 20 && values(db).get('r1.value') === 10);
  });

  test('kill -9 in the middle of a run: restarted, the run processed again, earlier results intact', async () => {
    const before = await runningPid(db);
    assert.ok(before);
    await makeSampleProposal(root, ['--runs', '1', '--first-run', '3', '--trains', '3']);
    const mark = await eventually('run 3 to be computing', () => (existsSync(marks) ? readdirSync(marks)[0] : undefined));
    const shimPid = Number(mark.replace('started-', ''));
    assert.deepEqual(jobRows(db).find((j) => j.run === 3), { run: 3, kind: 'raw', state: 'running', priority: 0, attempts: 1, repeats: 0, reason: null });

    process.kill(before, 'SIGKILL');
    // The interrupted run's Python ends with its backend rather than write on alone.
    await eventually('the interrupted run to end', () => !processAlive(shimPid));
    const after = await eventually('Supervisor to restart the backend', async () => {
      const pid = await runningPid(db);
      return pid !== undefined && pid !== before ? pid : undefined;
    });
    assert.ok(processAlive(after));
    writeFileSync(release, '');
    await eventually('run 3 processed again', () => values(db).get('r3.value') === 30);

    const job = jobRows(db).find((j) => j.run === 3);
    assert.equal(job?.state, 'done');
    assert.equal(job?.attempts, 2);
    const v = values(db);
    assert.equal(v.get('r1.value'), 10);
    assert.equal(v.get('r2.value'), 20);
    assert.match(readLog(db), / WARN  r3 raw: was interrupted when the backend stopped: processing it again$/m);
    assert.equal(jobRows(db).filter((j) => j.run < 3 && j.attempts !== 1).length, 0, 'runs 1 and 2 were not done again');
  });

  test('backend restart and status; supervisorctl restart damnit works as the seed shows', async () => {
    const before = await runningPid(db);
    const restarted = await runCli(['backend', 'restart'], { cwd: db });
    assert.equal(restarted.code, 0, restarted.stderr);
    assert.match(restarted.stdout, /^damnit: RUNNING/m);
    const middle = await runningPid(db);
    assert.ok(middle && middle !== before);

    const byHand = await supervisorctl(db, ['restart', 'damnit']);
    assert.equal(byHand.code, 0, byHand.out);
    assert.match(byHand.out, /damnit: stopped\ndamnit: started/);

    const status = await runCli(['backend', 'status'], { cwd: db });
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /^damnit: RUNNING \(pid \d+/m);
    assert.match(status.stdout, /^runs: 0 running, 0 waiting, 3 done, 0 failed; listener pid \d+ on /m);
    // Stopped by Supervisor: a clean stop, said in the log.
    assert.match(readLog(db), / INFO  stopping on SIGTERM$/m);
  });

  test('backend stop shuts supervisord down; start brings it back', async () => {
    const pid = await runningPid(db);
    const stopped = await runCli(['backend', 'stop'], { cwd: db });
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.match(stopped.stdout, /^damnit: stopped \(supervisord shut down\)$/m);
    assert.ok(pid && !processAlive(pid));
    const status = await runCli(['backend', 'status'], { cwd: db });
    assert.equal(status.code, 3);
    assert.match(status.stdout, /^damnit: supervisord is not running$/m);
    const restart = await runCli(['backend', 'restart'], { cwd: db });
    assert.equal(restart.code, 1);
    assert.match(restart.stderr, /^Error: supervisord is not running for this database: start the backend with 'amore-proto backend start'$/m);

    const started = await runCli(['backend', 'start', '--settle', '0.3', '--rescan', '0.2'], { cwd: db });
    assert.equal(started.code, 0, started.stderr);
    await makeSampleProposal(root, ['--runs', '1', '--first-run', '4', '--trains', '3']);
    await eventually('run 4 recorded', () => values(db).get('r4.value') === 40);
  });
});

describe('the backend of a database whose path holds a %', () => {
  const root = path.join(tmp.dir, '100% proposal');
  let db: string;
  after(async () => {
    if (db) await shutdownSupervisord(new DatabaseDir(db)).catch(() => undefined);
  });

  test('listen --daemonize starts it; its runs are processed and logged', async () => {
    db = await makeDatabase(root, 'from damnit_ctx import Variable\n\n@Variable(title="V")\ndef v(run):\n    return 1\n');
    const res = await runCli(['listen', '--daemonize', '--settle', '0.3', '--rescan', '0.2'], { cwd: db });
    assert.equal(res.code, 0, res.stdout + res.stderr);
    assert.match(res.stdout, /^damnit: RUNNING/m);
    await makeSampleProposal(root, ['--runs', '1', '--trains', '3']);
    await eventually('run 1 recorded', () => values(db).get('r1.v') === 1);
    assert.match(readLog(db), / INFO  r1 raw: done in /);
  });
});

/** The Dockerfile's instructions, continuation lines joined, comments dropped. */
function dockerInstructions(text: string): { stage: number; op: string; args: string }[] {
  const joined = text.replace(/\\\n/g, ' ');
  let stage = -1;
  const out: { stage: number; op: string; args: string }[] = [];
  for (const line of joined.split('\n')) {
    const match = /^\s*([A-Z]+)\s+(.*)$/.exec(line);
    if (!match || line.trim().startsWith('#')) continue;
    const [, op = '', args = ''] = match;
    if (op === 'FROM') stage += 1;
    out.push({ stage, op, args: args.trim() });
  }
  return out;
}

describe('the container image (Dockerfile; no Docker engine runs here)', () => {
  const text = readFileSync(path.join(REPO_ROOT, 'Dockerfile'), 'utf8');
  const steps = dockerInstructions(text);
  const ignored = readFileSync(path.join(REPO_ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));

  test('what it copies from the build context exists and is not excluded by .dockerignore', () => {
    const copies = steps.filter((s) => s.op === 'COPY' && !s.args.startsWith('--from'));
    assert.ok(copies.length >= 4);
    for (const { args } of copies) {
      const sources = args.split(/\s+/).slice(0, -1);
      for (const source of sources) {
        assert.ok(existsSync(path.join(REPO_ROOT, source)), `${source} exists`);
        assert.ok(!ignored.includes(source.split('/')[0] as string), `${source} is not in .dockerignore`);
      }
    }
  });

  test('the final image has the installed layout: package.json, python-shim/, dist/src/ and node_modules/', () => {
    const final = steps.filter((s) => s.stage === 1);
    const dest = (s: { args: string }) => s.args.split(/\s+/).at(-1);
    assert.deepEqual(
      final.filter((s) => s.op === 'COPY').map((s) => [s.args.split(/\s+/).at(-2), dest(s)]),
      [
        ['package.json', './'],
        ['/opt/damnit-ts/node_modules', './node_modules'],
        ['/opt/damnit-ts/dist/src', './dist/src'],
        ['python-shim', './python-shim'],
      ],
    );
    const pkg = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };
    assert.equal(pkg.bin['amore-proto'], 'dist/src/cli/main.js');
    const entry = final.find((s) => s.op === 'ENTRYPOINT');
    assert.deepEqual(JSON.parse(entry?.args ?? 'null'), ['node', '/opt/damnit-ts/dist/src/cli/main.js']);
    assert.deepEqual(JSON.parse(final.find((s) => s.op === 'CMD')?.args ?? 'null'), ['listen']);
    assert.equal(final.filter((s) => s.op === 'WORKDIR').at(-1)?.args, '/proposal/usr/Shared/amore');
  });

  test('it installs the Python packages scripts/setup.sh gives contexts, all real Debian packages', async () => {
    const setup = readFileSync(path.join(REPO_ROOT, 'scripts', 'setup.sh'), 'utf8');
    const wanted = [...setup.matchAll(/\bpython3-[a-z0-9-]+/g)].map((m) => m[0]).filter((p) => p !== 'python3-venv');
    const runStage = steps.filter((s) => s.stage === 1 && s.op === 'RUN').map((s) => s.args).join(' ');
    const installed = [...runStage.matchAll(/\bpython3(-[a-z0-9-]+)?\b/g)].map((m) => m[0]);
    for (const pkg of wanted) assert.ok(installed.includes(pkg), `${pkg} installed in the image`);
    const aptCache = await execa('apt-cache', ['show', '--no-all-versions', ...new Set(installed)], { reject: false });
    if (aptCache.failed && aptCache.exitCode === undefined) return; // no apt here: nothing more to check
    assert.equal(aptCache.exitCode, 0, aptCache.stderr);
  });

  test('laid out as in the image, the CLI runs its command: listen processes a run', async () => {
    const image = path.join(tmp.dir, 'opt-damnit-ts');
    mkdirSync(path.join(image, 'dist'), { recursive: true });
    copyFileSync(path.join(REPO_ROOT, 'package.json'), path.join(image, 'package.json'));
    cpSync(path.join(REPO_ROOT, 'python-shim'), path.join(image, 'python-shim'), { recursive: true });
    cpSync(path.join(REPO_ROOT, 'dist', 'src'), path.join(image, 'dist', 'src'), { recursive: true });
    symlinkSync(path.join(REPO_ROOT, 'node_modules'), path.join(image, 'node_modules'));

    const dbDir = await makeDatabase(path.join(tmp.dir, 'image-proposal'), 'from damnit_ctx import Variable\n\n@Variable()\ndef seven(run):\n    return 7\n', { runs: 1 });
    const res = await execa(process.execPath, [path.join(image, 'dist', 'src', 'cli', 'main.js'), 'listen', '--test'], {
      cwd: dbDir,
      input: '1234 1 raw\n',
      reject: false,
    });
    assert.equal(res.exitCode, 0, res.stderr);
    assert.equal(values(dbDir).get('r1.seven'), 7);
  });
});

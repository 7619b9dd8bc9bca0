// The command line as a whole (src/cli/main.ts, src/cli/argparse-style.ts): argparse's help and
// usage errors, and the names it is installed under.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { cliLinks, makeTempDir, runCli } from '../helpers/cli.js';

const tmp = makeTempDir('damnit-main-');
after(() => tmp.cleanup());
const links = cliLinks(tmp.dir);

const NOTE = "Warning: 'amore-proto' has been renamed to 'damnit'. Please update your scripts.\n";
const CHOICES = "'init', 'proposal', 'db-config', 'new-id', 'migrate', 'read-context', 'reprocess', 'cancel', 'table', 'check', 'context', 'listen', 'backend'";

describe('argparse behaviour', () => {
  it('help says usage: and exits 0', async () => {
    const res = await runCli(['--help'], { cwd: tmp.dir });
    assert.equal(res.code, 0);
    assert.match(res.stdout, /^usage: amore-proto \[options\] \[command\]\n/);
    assert.match(res.stdout, /\noptions:\n/);
    assert.match(res.stdout, /-h, --help +show this help message and exit/);
    const sub = await runCli(['reprocess', '--help'], { cwd: tmp.dir });
    assert.match(sub.stdout, /^usage: amore-proto reprocess \[options\] <run\.\.\.>\n[\s\S]*\npositional arguments:\n/);
  });

  it('an unknown command is an invalid choice, exit 2, even with --help after it', async () => {
    const expected = `usage: amore-proto [options] [command]\namore-proto: error: argument command: invalid choice: 'foo' (choose from ${CHOICES})\n`;
    for (const args of [['foo'], ['foo', '--help']]) {
      const res = await runCli(args, { cwd: tmp.dir });
      assert.deepEqual([res.code, res.stdout, res.stderr], [2, '', expected], args.join(' '));
    }
    const nested = await runCli(['context', 'foo', '--help'], { cwd: tmp.dir });
    assert.equal(nested.code, 2);
    assert.equal(nested.stderr, "usage: amore-proto context [options] [command]\namore-proto context: error: argument command: invalid choice: 'foo' (choose from 'install')\n");
  });

  it('--help before the command still shows help', async () => {
    const res = await runCli(['--help', 'foo'], { cwd: tmp.dir });
    assert.equal(res.code, 0);
    assert.match(res.stdout, /^usage: amore-proto/);
  });

  it('usage errors name the command and say what argparse says', async () => {
    const cases: [string[], string][] = [
      [[], 'usage: amore-proto [options] [command]\namore-proto: error: the following arguments are required: command\n'],
      [['reprocess'], 'usage: amore-proto reprocess [options] <run...>\namore-proto reprocess: error: the following arguments are required: run\n'],
      [['reprocess', '1', '--bogus'], 'usage: amore-proto reprocess [options] <run...>\namore-proto reprocess: error: unrecognized arguments: --bogus\n'],
      [['reprocess', '1', '--proposal'], 'usage: amore-proto reprocess [options] <run...>\namore-proto reprocess: error: argument --proposal: expected one argument\n'],
      [['check', '--format', 'xml', 'c.py'], "usage: amore-proto check [options] <files...>\namore-proto check: error: argument --format: invalid choice: 'xml' (choose from 'text', 'json', 'github')\n"],
    ];
    for (const [args, stderr] of cases) {
      const res = await runCli(args, { cwd: tmp.dir });
      assert.deepEqual([res.code, res.stdout, res.stderr], [2, '', stderr], args.join(' '));
    }
  });
});

describe('names', () => {
  it('as damnit: every message names damnit, and no note', async () => {
    const help = await runCli(['--help'], { cwd: tmp.dir, entry: links.damnit });
    assert.match(help.stdout, /^usage: damnit \[options\] \[command\]/);
    assert.equal(help.stderr, '');
    const bad = await runCli(['foo'], { cwd: tmp.dir, entry: links.damnit });
    assert.match(bad.stderr, /^usage: damnit .*\ndamnit: error: argument command: invalid choice/);
    const outside = await runCli(['table'], { cwd: tmp.dir, entry: links.damnit });
    assert.equal(outside.code, 1);
    assert.match(outside.stderr, /create one there with 'damnit proposal <number>'/);
  });

  it('as amore-proto: a note on stderr points at damnit; stdout and exit status are unchanged', async () => {
    const direct = await runCli(['proposal', '77'], { cwd: makeDir('direct') });
    const linked = await runCli(['proposal', '77'], { cwd: makeDir('linked'), entry: links['amore-proto'] });
    assert.equal(linked.code, direct.code);
    assert.equal(linked.stdout.replace('linked', 'direct'), direct.stdout);
    assert.equal(direct.stderr, '');
    assert.equal(linked.stderr, NOTE);
    const bad = await runCli(['foo'], { cwd: tmp.dir, entry: links['amore-proto'] });
    assert.equal(bad.code, 2);
    assert.ok(bad.stderr.startsWith(`${NOTE}usage: amore-proto [options] [command]\namore-proto: error: `));
  });
});

function makeDir(name: string): string {
  const dir = path.join(tmp.dir, name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

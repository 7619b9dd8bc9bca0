// `check --watch` (src/cli/check-watch.ts): one warm checker checks a file again each time it is
// saved, until Ctrl-C.
import assert from 'node:assert/strict';
import { renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { execa } from 'execa';
import { makeTempDir } from '../helpers/cli.js';
import { CLI_PATH } from '../helpers/paths.js';

const tmp = makeTempDir('damnit-check-watch-');
after(() => tmp.cleanup());

const GOOD = 'from damnit_ctx import Variable\n\n@Variable(title="A")\ndef a(run):\n    return 1\n';
const CYCLE =
  'from damnit_ctx import Variable\n\n@Variable(title="A")\ndef a(run, b: "var#b"):\n    return b\n\n' +
  '@Variable(title="B")\ndef b(run, a: "var#a"):\n    return a\n';

/** Resolves once `text` has appeared in what `stream` printed. */
function waitFor(stream: NodeJS.ReadableStream, seen: { text: string }, text: string | RegExp): Promise<void> {
  const found = (): boolean => (typeof text === 'string' ? seen.text.includes(text) : text.test(seen.text));
  return new Promise((resolve) => {
    if (found()) return resolve();
    const onData = (): void => {
      if (!found()) return;
      stream.off('data', onData);
      resolve();
    };
    stream.on('data', onData);
  });
}

describe('check --watch', () => {
  test('checks again on each save (also a save that replaces the file), and ends on Ctrl-C with 130', async () => {
    const file = path.join(tmp.dir, 'context.py');
    writeFileSync(file, GOOD);
    const child = execa(process.execPath, [CLI_PATH, 'check', '--watch', '--python-version', '3.11', 'context.py'], {
      cwd: tmp.dir,
      env: { NO_COLOR: '1' },
      reject: false,
      forceKillAfterDelay: false,
    });
    const out = { text: '' };
    const err = { text: '' };
    child.stdout?.on('data', (d: Buffer) => (out.text += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (err.text += d.toString()));
    await waitFor(child.stderr as NodeJS.ReadableStream, err, 'Watching context.py for changes');
    assert.match(err.text, /^1 file checked: no problems$/m);

    writeFileSync(file, CYCLE);
    await waitFor(child.stderr as NodeJS.ReadableStream, err, /context\.py changed ---\n1 file checked: 1 error/);
    // Standard output is a pipe of its own: its report may arrive after the summary on stderr.
    await waitFor(child.stdout as NodeJS.ReadableStream, out, /^context\.py:\d+:\d+: error: .*cycl/im);

    // As editors save: write a new file, then rename it over the old one.
    writeFileSync(`${file}.new`, GOOD);
    renameSync(`${file}.new`, file);
    await waitFor(child.stderr as NodeJS.ReadableStream, err, /changed ---\n1 file checked: no problems\n(?![\s\S]*1 error)/);

    child.kill('SIGINT');
    const res = await child;
    assert.equal(res.exitCode, 130, err.text);
    assert.doesNotMatch(err.text, /Error|Traceback/);
  });
});

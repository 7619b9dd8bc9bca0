/**
 * `check --watch`: one warm Pyodide checks the files again each time one is saved, so that a
 * check after the first takes the warm time per file (milliseconds) rather than Pyodide's start
 * (seconds). Ends on Ctrl-C or SIGTERM.
 */
import path from 'node:path';
import { watch } from 'chokidar';
import { checkFiles } from '../validate/check-files.js';
import type { FileReport } from '../validate/diagnostics.js';
import type { TargetResolver } from '../validate/target-python.js';
import type { ContextValidator } from '../validate/validator.js';

/** Editors save in bursts (write, rename, touch): one check for a burst. */
const SETTLE_MS = 100;

/**
 * Calls `show` with the reports of the files changed since the last check, until a signal;
 * resolves with the signal's name.
 */
export async function watchFiles(
  files: string[],
  validator: ContextValidator,
  targets: TargetResolver,
  show: (reports: FileReport[], changed: string[]) => void,
): Promise<NodeJS.Signals> {
  const byAbsolute = new Map(files.map((f) => [path.resolve(f), f]));
  const pending = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  let checking = Promise.resolve();
  // The directories, not the files: a save that replaces the file (rename) is seen too.
  const watcher = watch([...new Set([...byAbsolute.keys()].map((f) => path.dirname(f)))], { depth: 0, ignoreInitial: true });
  const changed = (file: string): void => {
    const given = byAbsolute.get(path.resolve(file));
    if (given === undefined) return;
    pending.add(given);
    clearTimeout(timer);
    timer = setTimeout(() => {
      const batch = [...pending];
      pending.clear();
      checking = checking.then(async () => show(await checkFiles(batch, validator, targets), batch));
    }, SETTLE_MS);
  };
  watcher.on('all', (event, file) => {
    if ((event === 'add' || event === 'change') && typeof file === 'string') changed(file);
  });
  await new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
  process.stderr.write(`Watching ${files.length === 1 ? files[0] : `${files.length} files`} for changes (Ctrl-C to stop)\n`);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    for (const s of ['SIGINT', 'SIGTERM'] as const) process.once(s, () => resolve(s));
  });
  clearTimeout(timer);
  await watcher.close();
  await checking;
  return signal;
}

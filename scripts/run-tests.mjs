// Runs every compiled test file with node's test runner, shows the spec report,
// and ends with the plain `N passed, N failed` line that CI reads.
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { run } from 'node:test';
import { spec } from 'node:test/reporters';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const testRoot = path.join(root, 'dist', 'test');
const only = process.argv.slice(2);

function findTests(dir) {
  const found = [];
  for (const entry of readdirSync(dir)) {
    const full = path.join(dir, entry);
    if (statSync(full).isDirectory()) found.push(...findTests(full));
    else if (entry.endsWith('.test.js')) found.push(full);
  }
  return found.sort();
}

let files = findTests(testRoot);
if (only.length > 0) files = files.filter((f) => only.some((o) => f.includes(o)));

// No Kafka broker can be reached here: the GUI's update messages go nowhere unless a test says
// where (test/updates/), so that no test waits on or warns about the facility's broker.
process.env.AMORE_BROKER ??= 'none';

let passed = 0;
let failed = 0;
let skipped = 0;
const stream = run({ files, concurrency: 2, timeout: 15 * 60 * 1000 });
stream.on('test:pass', (t) => {
  if (t.details?.type === 'suite') return;
  if (t.skip || t.todo) skipped += 1;
  else passed += 1;
});
stream.on('test:fail', (t) => {
  if (t.details?.type === 'suite' && t.details?.error?.failureType === 'subtestsFailed') return;
  failed += 1;
});
stream.compose(spec).pipe(process.stdout);
stream.on('end', () => {
  const tail = skipped > 0 ? `, ${skipped} skipped` : '';
  process.stdout.write(`\n${passed} passed, ${failed} failed${tail}\n`);
  process.exitCode = failed > 0 || passed === 0 ? 1 : 0;
});

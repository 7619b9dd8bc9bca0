import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { execa } from 'execa';
import { DatabaseDir } from '../../src/database-dir.js';
import { openDatabase } from '../../src/db/database.js';
import { JobStore } from '../../src/scheduler/job-store.js';
import { ListenerLock, recordedClaim } from '../../src/scheduler/listener-claim.js';
import { directoryModes } from '../../src/sharing.js';
import { makeTempDir } from '../helpers/cli.js';
import { REPO_ROOT } from '../helpers/paths.js';

const tmp = makeTempDir('damnit-claim-');
after(() => tmp.cleanup());

/** Tries to take the lock from another process; prints the outcome as JSON. */
const OTHER_PROCESS = `
import { DatabaseDir } from './dist/src/database-dir.js';
import { openDatabase } from './dist/src/db/database.js';
import { JobStore } from './dist/src/scheduler/job-store.js';
import { ListenerLock } from './dist/src/scheduler/listener-claim.js';
import { directoryModes } from './dist/src/sharing.js';
const dir = new DatabaseDir(process.argv[1]);
const db = openDatabase(dir);
const lock = ListenerLock.acquire(dir, new JobStore(db.connection), directoryModes(dir.root));
console.log(JSON.stringify(lock instanceof ListenerLock ? { took: true } : { took: false, heldBy: lock.heldBy, held: ListenerLock.isHeld(dir) }));
if (lock instanceof ListenerLock) lock.release();
db.close();
`;

async function tryFromAnotherProcess(root: string): Promise<{ took: boolean; heldBy?: { pid: number; host: string }; held?: boolean }> {
  const { stdout } = await execa(process.execPath, ['--input-type=module', '-e', OTHER_PROCESS, root], { cwd: REPO_ROOT });
  return JSON.parse(stdout) as { took: boolean };
}

describe('the listener lock', () => {
  test('held while its owner lives: another process is refused and told who holds it, and changes nothing', async () => {
    const dir = new DatabaseDir(path.join(tmp.dir, 'held'));
    mkdirSync(dir.root);
    const db = openDatabase(dir, { create: true });
    const store = new JobStore(db.connection);
    // A claim an older version recorded, or one left by a backend killed with SIGKILL: no obstacle.
    store.setFact('listener', JSON.stringify({ pid: 2 ** 22 + 12345, host: os.hostname(), startedAt: 0, heartbeatAt: 0 }));
    const lock = ListenerLock.acquire(dir, store, directoryModes(dir.root));
    assert.ok(lock instanceof ListenerLock);
    assert.equal(recordedClaim(store)?.pid, process.pid);
    assert.ok(existsSync(dir.listenerLockFile));

    const other = await tryFromAnotherProcess(dir.root);
    assert.deepEqual({ took: other.took, pid: other.heldBy?.pid, host: other.heldBy?.host, held: other.held }, {
      took: false, pid: process.pid, host: os.hostname(), held: true,
    });
    assert.equal(recordedClaim(store)?.pid, process.pid, "the refused process left the claim as it was");

    lock.release();
    assert.equal(recordedClaim(store), null);
    assert.equal(ListenerLock.isHeld(dir), false);
    assert.deepEqual(await tryFromAnotherProcess(dir.root), { took: true });
    db.close();
  });
});

/** `cancel` of a run whose cluster variables wait in a Slurm job: the job is cancelled (real Slurm). */
import assert from 'node:assert/strict';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { DatabaseDir } from '../../src/database-dir.js';
import { Listener } from '../../src/listener/listener.js';
import { StdinSource } from '../../src/listener/stdin-source.js';
import { createBackendLogger } from '../../src/log.js';
import { makeTempDir, runCli } from '../helpers/cli.js';
import { startSlurmCluster, type SlurmCluster } from '../helpers/slurm-cluster.js';
import { eventually, jobRows, makeDatabase, openDb, PROPOSAL, readLog, values } from '../listener/helpers.js';

const tmp = makeTempDir('damnit-cancel-slurm-');
after(() => tmp.cleanup());

const CONTEXT = `import time
from pathlib import Path
from damnit_ctx import Variable

@Variable(title='Here')
def here(run):
    return 1

@Variable(title='Heavy', cluster=True)
def heavy(run):
    while not Path('never').exists():
        time.sleep(0.1)
    return 2
`;

describe('cancel and Slurm', () => {
  let cluster: SlurmCluster;
  before(async () => {
    cluster = await startSlurmCluster();
  });
  after(async () => {
    await cluster?.stop();
  });

  test("the backend's run waiting for its cluster job: the job cancelled, the run failed with why", async () => {
    const dbPath = await makeDatabase(path.join(tmp.dir, 'p'), CONTEXT, { runs: 1 });
    const saved = { ...process.env };
    Object.assign(process.env, cluster.env);
    const dir = new DatabaseDir(dbPath);
    const db = openDb(dbPath);
    const { logger, close } = createBackendLogger({ file: dir.logFile, format: 'text' });
    const input = new PassThrough();
    const listener = await Listener.start({ dir, db, logger, sources: () => [new StdinSource(input)] });
    try {
      input.write(`${PROPOSAL} 1 raw\n`);
      const jobId = await eventually('the cluster job submitted', () => /cluster variables: Slurm job (\d+) submitted/.exec(readLog(dbPath))?.[1]);
      const res = await runCli(['cancel', '1'], { cwd: dbPath, env: cluster.env });
      assert.equal(res.code, 0, res.stdout + res.stderr);
      assert.equal(res.stdout, "r1: the backend's running raw processing stopped\n");
      const row = await eventually('the job failed', () => {
        const r = jobRows(dbPath).find((j) => j.run === 1);
        return r?.state === 'failed' ? r : undefined;
      });
      assert.match(row.reason ?? '', /cluster variables heavy were not computed: cancelled by /);
      assert.equal(values(dbPath).get('r1.here'), 1, 'the local part stays recorded');
      const state = await eventually('Slurm says CANCELLED', async () => {
        const s = (await cluster.showJob(jobId)).JobState;
        return s === 'CANCELLED' ? s : undefined;
      });
      assert.equal(state, 'CANCELLED');
    } finally {
      input.end();
      await listener.stop();
      close();
      db.close();
      process.env = saved;
    }
  });
});

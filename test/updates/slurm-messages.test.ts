/** process_on slurm: the GUI sees each run's Slurm job queued, running on its node, and finished (real Slurm). */
import assert from 'node:assert/strict';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { DatabaseDir } from '../../src/database-dir.js';
import { Listener } from '../../src/listener/listener.js';
import { StdinSource } from '../../src/listener/stdin-source.js';
import { createBackendLogger } from '../../src/log.js';
import { openGuiUpdates } from '../../src/updates/gui-updates.js';
import { makeTempDir, runCli } from '../helpers/cli.js';
import { FakeBroker } from '../helpers/fake-kafka-producer.js';
import { startSlurmCluster, type SlurmCluster } from '../helpers/slurm-cluster.js';
import { eventually, makeDatabase, openDb, PROPOSAL } from '../listener/helpers.js';

const tmp = makeTempDir('damnit-slurm-messages-');
after(() => tmp.cleanup());

type Message = { msg_kind: string; data: Record<string, unknown> };

describe('GUI messages for runs processed in Slurm jobs', () => {
  let cluster: SlurmCluster;
  before(async () => {
    cluster = await startSlurmCluster();
  });
  after(async () => {
    await cluster?.stop();
  });

  test('PENDING, then PENDING with the job id, RUNNING on its node, the values, finished: one processing id', async () => {
    const dbPath = await makeDatabase(path.join(tmp.dir, 'p'), "from damnit_ctx import Variable\n\n@Variable(title='V')\ndef v(run):\n    return 1\n", { runs: 1 });
    // A memory the test node always has (without RealMemory in slurm.conf it offers 1 MB).
    for (const args of [['process_on', 'slurm'], ['noncluster_mem', '1M'], ['--num', 'noncluster_cpus', '1']]) {
      assert.equal((await runCli(['db-config', ...args], { cwd: dbPath, env: cluster.env })).code, 0);
    }
    const saved = { ...process.env };
    Object.assign(process.env, cluster.env);
    const dir = new DatabaseDir(dbPath);
    const db = openDb(dbPath);
    const { logger, close } = createBackendLogger({ file: dir.logFile, format: 'text' });
    const broker = new FakeBroker();
    const updates = openGuiUpdates(db, { warn: () => undefined, info: () => undefined }, { option: 'b:1', createProducer: broker.factory, heartbeatMs: 3_600_000 });
    const input = new PassThrough();
    const listener = await Listener.start({ dir, db, logger, sources: () => [new StdinSource(input)], updates, updateBrokerOption: 'b:1' });
    try {
      input.end(`${PROPOSAL} 1 raw\n`);
      await listener.finished;
      await eventually('finished sent', () => broker.messages().some((m) => (m as Message).msg_kind === 'processing_finished'));
    } finally {
      await listener.stop();
      await updates.close();
      close();
      db.close();
      process.env = saved;
    }
    const got = broker.messages() as Message[];
    const states = got.filter((m) => m.msg_kind === 'processing_state_set').map((m) => m.data);
    assert.deepEqual(states.map((s) => s.status), ['PENDING', 'PENDING', 'RUNNING'], JSON.stringify(got));
    assert.equal(new Set(states.map((s) => s.processing_id)).size, 1);
    const jobId = states[1]?.slurm_job_id;
    assert.match(String(jobId), /^\d+$/);
    assert.equal(states[2]?.slurm_job_id, jobId);
    assert.equal(states[2]?.hostname, cluster.nodeName);
    assert.deepEqual(got.filter((m) => m.msg_kind === 'run_values_updated').map((m) => m.data), [{ run: 1, proposal: PROPOSAL, values: { start_time: null, v: null } }]);
    assert.deepEqual(got.filter((m) => m.msg_kind === 'processing_finished').map((m) => m.data.processing_id), [states[0]?.processing_id]);
  });
});

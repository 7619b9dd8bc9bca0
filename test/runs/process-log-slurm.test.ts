/** Process logs and GUI messages for runs processed in Slurm jobs, on the real single-node Slurm. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeTempDir, runCli } from '../helpers/cli.js';
import { startSlurmCluster, type SlurmCluster } from '../helpers/slurm-cluster.js';
import { makeDatabase, values } from '../listener/helpers.js';

const tmp = makeTempDir('damnit-process-log-slurm-');
after(() => tmp.cleanup());

const CONTEXT = `from damnit_ctx import Variable

@Variable(title='Value')
def value(run):
    print('printed in the job')
    return 3

@Variable(title='Broken')
def broken(run):
    raise KeyError('no such source')
`;

describe('process logs of Slurm processing', () => {
  let cluster: SlurmCluster;
  before(async () => {
    cluster = await startSlurmCluster();
  });
  after(async () => {
    await cluster?.stop();
  });

  test('reprocess --cluster: each task in its run log, with its job output; PENDING and finished for the GUI', async () => {
    const db = await makeDatabase(path.join(tmp.dir, 'array'), CONTEXT, { runs: 2 });
    const res = await runCli(['reprocess', '1', '2', '--cluster'], { cwd: db, env: { ...cluster.env, AMORE_BROKER: 'file:messages.jsonl' } });
    assert.equal(res.code, 0, res.stderr);
    const arrayId = /Submitted Slurm array job (\d+)/.exec(res.stdout)?.[1];
    assert.ok(arrayId, res.stdout);
    for (const run of [1, 2]) {
      assert.equal(values(db).get(`r${run}.value`), 3);
      assert.match(res.stderr, new RegExp(`^r${run} broken: KeyError: 'no such source'$`, 'm'));
      const log = readFileSync(path.join(db, 'process_logs', `r${run}-p1234.out`), 'utf8');
      assert.match(log, new RegExp(`^----- Processing r${run} \\(p1234\\) as .* on .* \\(job id: ${arrayId}_${run}\\) -----$`, 'm'));
      assert.match(log, new RegExp(`^----- output of Slurm job ${arrayId}_${run} \\(.*slurm_logs/r${run}-p1234-\\d+\\.out\\):$`, 'm'));
      assert.match(log, /^printed in the job$/m);
      assert.match(log, /^KeyError: 'no such source'$/m);
      assert.match(log, /^----- done in \d+\.\d s: 2 variables, 1 error\n {2}broken: KeyError: 'no such source'\n$/m);
    }
    const messages = readFileSync(path.join(db, 'messages.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { msg_kind: string; data: Record<string, unknown> });
    const pending = messages.filter((m) => m.msg_kind === 'processing_state_set');
    assert.deepEqual(pending.map((m) => [m.data.run, m.data.status, m.data.slurm_job_id]), [[1, 'PENDING', `${arrayId}_1`], [2, 'PENDING', `${arrayId}_2`]]);
    const finished = messages.filter((m) => m.msg_kind === 'processing_finished').map((m) => m.data.processing_id);
    assert.deepEqual(new Set(finished), new Set(pending.map((m) => m.data.processing_id)));
    assert.equal(messages.filter((m) => m.msg_kind === 'run_values_updated').length, 2);
  });
});

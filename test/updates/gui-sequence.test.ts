/**
 * Issue 10's "done when": with a fake broker at the producer interface, a backend processing a
 * raw and a proc event for a run, then read-context with a new variable, send the reference's
 * messages in the reference's order, field by field (fixtures/gui-messages/README.md says where
 * each comes from in the reference).
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { after, describe, test } from 'node:test';
import { DatabaseDir } from '../../src/database-dir.js';
import { Listener } from '../../src/listener/listener.js';
import { StdinSource } from '../../src/listener/stdin-source.js';
import { createBackendLogger } from '../../src/log.js';
import { openGuiUpdates } from '../../src/updates/gui-updates.js';
import { UpdateMessage } from '../../src/updates/messages.js';
import { makeTempDir, runCli } from '../helpers/cli.js';
import { FakeBroker } from '../helpers/fake-kafka-producer.js';
import { eventually, jobRows, makeDatabase, openDb, PROPOSAL } from '../listener/helpers.js';

const tmp = makeTempDir('damnit-gui-seq-');
after(() => tmp.cleanup());

const CONTEXT = `from damnit_ctx import Variable

@Variable(title='Run number', tags=['meta'])
def run_number(run, n: 'meta#run_number'):
    return n

@Variable(title='Proc value', data='proc', description='From corrected data')
def proc_value(run):
    return 7
`;

const EXTRA = `
@Variable(title='Extra')
def extra(run):
    return 1
`;

const HOST = os.hostname();
const USER = os.userInfo().username;

function variableSet(name: string, title: string, description: string | null, tags: string[] | null): unknown {
  return { msg_kind: 'variable_set', data: { name, title, description, tags, attributes: null, type: null } };
}

function state(id: string, data: 'raw' | 'proc', status: 'PENDING' | 'RUNNING'): unknown {
  const who = status === 'RUNNING' ? { hostname: HOST, username: USER } : { hostname: '', username: '' };
  return { msg_kind: 'processing_state_set', data: { processing_id: id, proposal: PROPOSAL, run: 1, data, status, ...who, slurm_cluster: null, slurm_job_id: '' } };
}

function processingIds(messages: unknown[]): string[] {
  const ids = messages
    .filter((m) => (m as { msg_kind: string }).msg_kind === 'processing_state_set')
    .map((m) => (m as { data: { processing_id: string } }).data.processing_id);
  return [...new Set(ids)];
}

describe('GUI update messages, end to end', () => {
  test('a raw and a proc event, then read-context with a new variable: the reference sequence', async () => {
    const dbPath = await makeDatabase(path.join(tmp.dir, 'p'), CONTEXT, { runs: 1, generatorArgs: ['--with-proc'] });
    const dir = new DatabaseDir(dbPath);
    const db = openDb(dbPath);
    const dbId = String(db.metameta.get('db_id'));
    const { logger, close } = createBackendLogger({ file: dir.logFile, format: 'text' });
    const broker = new FakeBroker();
    const notices: string[] = [];
    const updates = openGuiUpdates(db, { warn: (t) => notices.push(t), info: (t) => notices.push(t) }, {
      option: 'broker.example:9091',
      createProducer: broker.factory,
      // No heartbeat repeats within this test: the runs are short, but a loaded machine is slow.
      heartbeatMs: 3_600_000,
    });
    const input = new PassThrough();
    const listener = await Listener.start({ dir, db, logger, sources: () => [new StdinSource(input)], updates, updateBrokerOption: 'broker.example:9091' });
    const finishedCount = (): number => broker.messages().filter((m) => (m as { msg_kind: string }).msg_kind === 'processing_finished').length;
    try {
      input.write(`${PROPOSAL} 1 raw\n`);
      await eventually('the raw job done and announced', () => jobRows(dbPath).some((j) => j.kind === 'raw' && j.state === 'done') && finishedCount() === 1);
      input.write(`${PROPOSAL} 1 proc\n`);
      await eventually('the proc job done and announced', () => jobRows(dbPath).some((j) => j.kind === 'proc' && j.state === 'done') && finishedCount() === 2);
      input.end();
      await listener.finished;
    } finally {
      await listener.stop();
      await updates.close();
      close();
      db.close();
    }
    assert.deepEqual(notices, []);
    assert.deepEqual([...new Set(broker.delivered.map((d) => d.topic))], [`test.damnit.db-${dbId}`]);
    assert.deepEqual(broker.brokersAsked, [['broker.example:9091']]);

    const got = broker.messages();
    const [raw, proc] = processingIds(got) as [string, string];
    assert.match(raw, /^[0-9a-f-]{36}$/);
    assert.notEqual(raw, proc);
    const variables = [
      variableSet('run_number', 'Run number', null, ['meta']),
      variableSet('proc_value', 'Proc value', 'From corrected data', null),
    ];
    const expected = [
      state(raw, 'raw', 'PENDING'),
      ...variables,
      state(raw, 'raw', 'RUNNING'),
      { msg_kind: 'run_values_updated', data: { run: 1, proposal: PROPOSAL, values: { run_number: null, start_time: null } } },
      { msg_kind: 'processing_finished', data: { processing_id: raw } },
      state(proc, 'proc', 'PENDING'),
      ...variables,
      state(proc, 'proc', 'RUNNING'),
      { msg_kind: 'run_values_updated', data: { run: 1, proposal: PROPOSAL, values: { proc_value: null, start_time: null } } },
      { msg_kind: 'processing_finished', data: { processing_id: proc } },
    ];
    assert.deepEqual(got, expected);
    // Field order too, as the reference's dicts have it.
    assert.equal(JSON.stringify(got), JSON.stringify(expected));
    for (const m of got) assert.ok(UpdateMessage.safeParse(m).success);

    // read-context through the built CLI; file:PATH is the same producer interface, writing lines.
    writeFileSync(dir.contextFile, CONTEXT + EXTRA);
    const res = await runCli(['read-context'], { cwd: dbPath, env: { AMORE_BROKER: 'file:gui-messages.jsonl' } });
    assert.equal(res.code, 0, res.stderr);
    const fromReadContext = readFileSync(path.join(dbPath, 'gui-messages.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as unknown);
    assert.deepEqual(fromReadContext, [...variables, variableSet('extra', 'Extra', null, null)]);
  });
});

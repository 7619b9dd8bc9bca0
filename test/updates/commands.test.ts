/** Update messages from one-shot commands, through the built CLI. */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { makeTempDir, runCli } from '../helpers/cli.js';
import { makeDatabase, PROPOSAL, values } from '../listener/helpers.js';

const tmp = makeTempDir('damnit-gui-cmd-');
after(() => tmp.cleanup());

const CONTEXT = `from damnit_ctx import Variable

@Variable(title='Value')
def value(run):
    return 3

@Variable(title='Broken')
def broken(run):
    raise KeyError('no such source')
`;

function lines(file: string): unknown[] {
  return readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as unknown);
}

/** A port on 127.0.0.1 that nothing listens on (taken, then freed). */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('update messages from commands', () => {
  test('reprocess: variables, then per run RUNNING, the values recorded (errors too), finished', async () => {
    const db = await makeDatabase(path.join(tmp.dir, 'reprocess'), CONTEXT);
    const res = await runCli(['reprocess', '5', '--mock'], { cwd: db, env: { AMORE_BROKER: 'file:messages.jsonl' } });
    assert.equal(res.code, 0, res.stderr);
    const got = lines(path.join(db, 'messages.jsonl')) as { msg_kind: string; data: Record<string, unknown> }[];
    const id = got[2]?.data.processing_id;
    assert.deepEqual(got, [
      { msg_kind: 'variable_set', data: { name: 'value', title: 'Value', description: null, tags: null, attributes: null, type: null } },
      { msg_kind: 'variable_set', data: { name: 'broken', title: 'Broken', description: null, tags: null, attributes: null, type: null } },
      {
        msg_kind: 'processing_state_set',
        data: { processing_id: id, proposal: PROPOSAL, run: 5, data: 'all', status: 'RUNNING', hostname: os.hostname(), username: os.userInfo().username, slurm_cluster: null, slurm_job_id: '' },
      },
      { msg_kind: 'run_values_updated', data: { run: 5, proposal: PROPOSAL, values: { start_time: null, value: null, broken: null } } },
      { msg_kind: 'processing_finished', data: { processing_id: id } },
    ]);
  });

  test('a broker that refuses connections: one warning, the runs processed and recorded all the same', async () => {
    const db = await makeDatabase(path.join(tmp.dir, 'refused'), CONTEXT);
    const port = await closedPort();
    const res = await runCli(['reprocess', '1', '2', '--mock'], { cwd: db, env: { AMORE_BROKER: `127.0.0.1:${port}` } });
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /Processed 2 runs: 2 ok, 0 failed/);
    const warnings = res.stderr.split('\n').filter((l) => l.startsWith('warning: '));
    assert.equal(warnings.length, 1, res.stderr);
    assert.match(
      warnings[0] as string,
      new RegExp(`^warning: cannot send update messages to the GUI through Kafka at 127\\.0\\.0\\.1:${port} \\(.*\\): processing goes on, .*; if no GUI needs them: 'amore-proto db-config update_broker none'$`),
    );
    assert.equal(values(db).get('r1.value'), 3);
    assert.equal(values(db).get('r2.value'), 3);
  });

  test("update_broker 'none' sends nothing and says nothing; a bad value is named", async () => {
    const db = await makeDatabase(path.join(tmp.dir, 'none'), CONTEXT);
    assert.equal((await runCli(['db-config', 'update_broker', 'none'], { cwd: db })).code, 0);
    const quiet = await runCli(['read-context'], { cwd: db, env: { AMORE_BROKER: '' } });
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.equal(quiet.stderr, '');
    assert.equal((await runCli(['db-config', 'update_broker', 'not a broker'], { cwd: db })).code, 0);
    const bad = await runCli(['read-context'], { cwd: db, env: { AMORE_BROKER: '' } });
    assert.equal(bad.code, 0, bad.stderr);
    assert.match(bad.stderr, /^warning: update messages: db-config update_broker 'not a broker' is not host:port \(or 'none', or file:PATH\); no update messages are sent until it is fixed$/m);
    const option = await runCli(['listen', '--test', '--update-broker', 'nohost'], { cwd: db });
    assert.equal(option.code, 2);
    assert.match(option.stderr, /--update-broker: 'nohost' is not host:port/);
    assert.equal(existsSync(path.join(db, 'messages.jsonl')), false);
  });
});

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { processingFinishedMessage, type UpdateMessage } from '../../src/updates/messages.js';
import { UpdateSender } from '../../src/updates/sender.js';
import { FakeBroker } from '../helpers/fake-kafka-producer.js';
import { eventually } from '../listener/helpers.js';

const TOPIC = 'test.damnit.db-abc';

function sender(broker: FakeBroker, opts: { operationTimeoutMs?: number } = {}): { sender: UpdateSender; warnings: string[]; infos: string[] } {
  const warnings: string[] = [];
  const infos: string[] = [];
  const s = new UpdateSender({
    brokers: ['broker.example:9091'],
    topic: TOPIC,
    createProducer: broker.factory,
    notices: { warn: (t) => warnings.push(t), info: (t) => infos.push(t) },
    // Short pauses keep the test quick; nothing asserted depends on how long they are.
    retryMs: 5,
    maxRetryMs: 20,
    operationTimeoutMs: opts.operationTimeoutMs,
  });
  return { sender: s, warnings, infos };
}

const finished = (i: number): UpdateMessage => processingFinishedMessage(`id-${i}`);
const ids = (broker: FakeBroker): string[] => broker.messages().map((m) => (m as { data: { processing_id: string } }).data.processing_id);

describe('update sender', () => {
  test('delivers every message in order to the topic, as JSON', async () => {
    const broker = new FakeBroker();
    const { sender: s, warnings } = sender(broker);
    for (let i = 0; i < 3; i++) s.send(finished(i));
    const { undelivered } = await s.close();
    assert.equal(undelivered, 0);
    assert.deepEqual(broker.delivered.map((d) => d.topic), [TOPIC, TOPIC, TOPIC]);
    assert.deepEqual(broker.messages()[0], { msg_kind: 'processing_finished', data: { processing_id: 'id-0' } });
    assert.deepEqual(ids(broker), ['id-0', 'id-1', 'id-2']);
    assert.deepEqual(warnings, []);
  });

  test('a broker that refuses: one warning, retries in the background, nothing lost once it is back', async () => {
    const broker = new FakeBroker();
    broker.behaviour = 'refuse';
    const { sender: s, warnings, infos } = sender(broker);
    s.send(finished(0));
    s.send(finished(1));
    await eventually('several tries', () => broker.connects >= 3);
    s.send(finished(2));
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0] as string, /cannot send update messages to the GUI through Kafka at broker\.example:9091 \(Connection error: connect ECONNREFUSED 127\.0\.0\.1:9091\): processing goes on, the messages wait and are retried in the background/);
    broker.behaviour = 'up';
    await eventually('all delivered', () => broker.delivered.length === 3);
    assert.deepEqual(ids(broker), ['id-0', 'id-1', 'id-2']);
    assert.match(infos.join('\n'), /Kafka at broker\.example:9091 takes update messages again/);
    assert.equal(warnings.length, 1);
    await s.close();
  });

  test('a broker that hangs counts as away after the operation time limit, and is retried', async () => {
    const broker = new FakeBroker();
    broker.behaviour = 'hang';
    const { sender: s, warnings } = sender(broker, { operationTimeoutMs: 50 });
    s.send(finished(0));
    await eventually('the warning', () => warnings.length === 1);
    assert.match(warnings[0] as string, /no answer connecting to broker\.example:9091 within 0\.05 s/);
    broker.behaviour = 'up';
    await eventually('delivered after all', () => broker.delivered.length === 1);
    await s.close();
  });

  test('a connection dropped mid-send: the batch is sent again, in order', async () => {
    const broker = new FakeBroker();
    broker.dropAfterSends = 1;
    const { sender: s, warnings } = sender(broker);
    s.send(finished(0));
    await eventually('first delivered', () => broker.delivered.length === 1);
    s.send(finished(1));
    s.send(finished(2));
    await eventually('the rest delivered', () => broker.delivered.length === 3);
    assert.deepEqual(ids(broker), ['id-0', 'id-1', 'id-2']);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] as string, /ECONNRESET/);
    await s.close();
  });

  test('a message the broker rejects is dropped with a warning; the others still go, in order', async () => {
    const broker = new FakeBroker();
    broker.rejectContaining = 'id-1';
    const { sender: s, warnings } = sender(broker);
    for (let i = 0; i < 4; i++) s.send(finished(i));
    await s.close();
    assert.deepEqual(ids(broker), ['id-0', 'id-2', 'id-3']);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] as string, /Kafka rejected a processing_finished update message \(The request included a message larger than the max message size the server will accept\): dropped; later ones are still sent/);
  });

  test('closing with the broker away returns at once and says how many were not delivered', async () => {
    const broker = new FakeBroker();
    broker.behaviour = 'refuse';
    const { sender: s, warnings } = sender(broker);
    s.send(finished(0));
    s.send(finished(1));
    await eventually('the warning', () => warnings.length === 1);
    assert.deepEqual(await s.close(60_000), { undelivered: 2 });
  });
});

import assert from 'node:assert/strict';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import type { EachMessagePayload } from 'kafkajs';
import { DatabaseDir } from '../../src/database-dir.js';
import type { RunEvent } from '../../src/listener/events.js';
import {
  defaultKafkaProfile,
  KAFKA_PROFILES,
  KafkaSource,
  type KafkaConsumerFactory,
  type KafkaConsumerLike,
} from '../../src/listener/kafka-source.js';
import { Listener } from '../../src/listener/listener.js';
import { createBackendLogger } from '../../src/log.js';
import { makeTempDir } from '../helpers/cli.js';
import { eventually, jobRows, makeDatabase, openDb, PROPOSAL, values } from './helpers.js';

const tmp = makeTempDir('damnit-kafka-');
after(() => tmp.cleanup());

/** Stands in for kafkajs at the consumer interface: the test delivers messages by hand. */
class FakeConsumer implements KafkaConsumerLike {
  subscribed: string[] = [];
  connected = false;
  private handler: ((payload: EachMessagePayload) => Promise<void>) | null = null;
  private offset = 0;
  /** Offsets kafkajs would commit: those whose handler returned. */
  committed: number[] = [];

  async connect(): Promise<void> {
    this.connected = true;
  }

  async subscribe(subscription: Parameters<KafkaConsumerLike['subscribe']>[0]): Promise<void> {
    assert.ok('topics' in subscription);
    this.subscribed.push(...subscription.topics.map(String));
    assert.equal(subscription.fromBeginning, false);
  }

  async run(config?: Parameters<KafkaConsumerLike['run']>[0]): Promise<void> {
    this.handler = config?.eachMessage ?? null;
  }

  async disconnect(): Promise<void> {
    this.connected = false;
  }

  /** Delivers one message as kafkajs would; resolves when the handler has returned. */
  async deliver(topic: string, value: unknown, timestampMs = 1_767_600_000_000): Promise<void> {
    assert.ok(this.handler, 'run() was called');
    const offset = this.offset++;
    await this.handler({
      topic,
      partition: 0,
      message: {
        key: null,
        value: Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)),
        timestamp: String(timestampMs),
        attributes: 0,
        offset: String(offset),
        headers: {},
      },
      heartbeat: async () => undefined,
      pause: () => () => undefined,
    });
    this.committed.push(offset);
  }
}

function fakeFactory(consumer: FakeConsumer, seen: { groupId?: string; brokers?: string[] }): KafkaConsumerFactory {
  return ({ groupId, brokers }) => {
    seen.groupId = groupId;
    seen.brokers = brokers;
    return consumer;
  };
}

describe('Kafka source', () => {
  test('the facility topics and event names; the online cluster has its own', () => {
    assert.deepEqual(KAFKA_PROFILES.maxwell.topics, ['test.r2d2', 'cal.offline-corrections']);
    assert.deepEqual(KAFKA_PROFILES.maxwell.events, { migration_complete: 'raw', run_corrections_complete: 'proc' });
    assert.equal(defaultKafkaProfile('exflonc12'), 'onc');
    assert.equal(defaultKafkaProfile('max-exfl001'), 'maxwell');
  });

  test('messages become raw and proc events; others are passed over with a notice', async () => {
    const consumer = new FakeConsumer();
    const seen: { groupId?: string; brokers?: string[] } = {};
    const source = new KafkaSource({ profile: KAFKA_PROFILES.maxwell, dbId: 'abc123', createConsumer: fakeFactory(consumer, seen) });
    const events: RunEvent[] = [];
    const notices: string[] = [];
    await source.start((e) => events.push(e), (level, message) => notices.push(`${level}: ${message}`));
    assert.equal(seen.groupId, 'xfel-da-damnit-ts-abc123');
    assert.deepEqual(seen.brokers, ['exflwgs06:9091']);
    assert.deepEqual(consumer.subscribed, ['test.r2d2', 'cal.offline-corrections']);

    await consumer.deliver('test.r2d2', { event: 'migration_complete', proposal: 1234, run: 42, instrument: 'SA2' });
    await consumer.deliver('cal.offline-corrections', { event: 'run_corrections_complete', proposal: '001234', run: '42' });
    await consumer.deliver('test.r2d2', { event: 'something_else', proposal: 1234, run: 42 });
    await consumer.deliver('test.r2d2', '{not json');
    await consumer.deliver('test.r2d2', { event: 'migration_complete', proposal: 1234 });
    assert.deepEqual(
      events.map((e) => [e.proposal, e.run, e.kind, e.source, e.time]),
      [
        [1234, 42, 'raw', 'kafka', 1_767_600_000],
        [1234, 42, 'proc', 'kafka', 1_767_600_000],
      ],
    );
    assert.match(notices.join('\n'), /debug: Kafka message test\.r2d2\[0\]@2: event "something_else" is not one we act on/);
    assert.match(notices.join('\n'), /warn: Kafka message test\.r2d2\[0\]@3 is not JSON: skipped/);
    assert.match(notices.join('\n'), /warn: Kafka message test\.r2d2\[0\]@4 \(migration_complete\) has no usable proposal and run: skipped/);
    await source.close();
    assert.equal(consumer.connected, false);
  });

  test('an event that cannot be recorded is not acknowledged, so Kafka delivers it again', async () => {
    const consumer = new FakeConsumer();
    const source = new KafkaSource({ profile: KAFKA_PROFILES.maxwell, dbId: 'x', createConsumer: fakeFactory(consumer, {}) });
    await source.start(
      () => {
        throw new Error('database is locked');
      },
      () => undefined,
    );
    await assert.rejects(consumer.deliver('test.r2d2', { event: 'migration_complete', proposal: 1, run: 1 }), /database is locked/);
    assert.deepEqual(consumer.committed, []);
  });

  test('a backend on Kafka events processes the runs of its proposal and ignores the others', async () => {
    const root = path.join(tmp.dir, 'proposal');
    const dbPath = await makeDatabase(root, "from damnit_ctx import Variable\n\n@Variable(title='Run')\ndef run_number(run, n: 'meta#run_number'):\n    return n\n\n@Variable(title='Proc', data='proc')\ndef proc_value(run):\n    return 7\n", {
      runs: 2,
      generatorArgs: ['--with-proc'],
    });
    const dir = new DatabaseDir(dbPath);
    const db = openDb(dbPath);
    const { logger, close } = createBackendLogger({ file: dir.logFile, format: 'text' });
    const consumer = new FakeConsumer();
    const listener = await Listener.start({
      dir,
      db,
      logger,
      sources: ({ dbId }) => [new KafkaSource({ profile: KAFKA_PROFILES.maxwell, dbId, createConsumer: fakeFactory(consumer, {}) })],
    });
    try {
      await consumer.deliver('test.r2d2', { event: 'migration_complete', proposal: PROPOSAL, run: 1 });
      await consumer.deliver('test.r2d2', { event: 'migration_complete', proposal: 9999, run: 1 });
      await consumer.deliver('cal.offline-corrections', { event: 'run_corrections_complete', proposal: PROPOSAL, run: 1 });
      await consumer.deliver('test.r2d2', { event: 'migration_complete', proposal: PROPOSAL, run: 2 });
      await eventually('three jobs done', () => jobRows(dbPath).filter((j) => j.state === 'done').length === 3);
      const v = values(dbPath);
      assert.equal(v.get('r1.run_number'), 1);
      assert.equal(v.get('r1.proc_value'), 7);
      assert.equal(v.get('r2.run_number'), 2);
      assert.equal(v.has('r2.proc_value'), false, 'no proc event for run 2');
      assert.deepEqual(jobRows(dbPath).map((j) => `r${j.run} ${j.kind}`), ['r1 proc', 'r1 raw', 'r2 raw']);
      const added = db.connection.prepare('SELECT added_at FROM run_info WHERE run = 1').get() as { added_at: number };
      assert.equal(added.added_at, 1_767_600_000, "run_info.added_at is the event's time");
    } finally {
      await listener.stop();
      close();
      db.close();
    }
  });
});

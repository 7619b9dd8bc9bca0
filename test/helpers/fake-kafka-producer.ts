/**
 * Stands in for a kafkajs producer at the interface the update sender uses (connect, send,
 * disconnect): no Kafka broker can run here. It records what it was given and can be told to
 * refuse connections, hang, drop a send, or reject particular messages as a broker would.
 */
import kafkajs, { type ProducerRecord, type RecordMetadata } from 'kafkajs';
import type { KafkaProducerFactory, KafkaProducerLike } from '../../src/updates/sender.js';

const { KafkaJSConnectionError, KafkaJSProtocolError } = kafkajs;

export type BrokerBehaviour = 'up' | 'refuse' | 'hang';

export class FakeBroker {
  /** Delivered messages, parsed, with their topic. */
  readonly delivered: { topic: string; message: unknown }[] = [];
  behaviour: BrokerBehaviour = 'up';
  /** Sends left before the connection drops mid-send (once). */
  dropAfterSends: number | null = null;
  /** Message values containing this text are rejected as too large. */
  rejectContaining: string | null = null;
  connects = 0;
  brokersAsked: string[][] = [];

  get factory(): KafkaProducerFactory {
    return (brokers) => {
      this.brokersAsked.push(brokers);
      return new FakeProducer(this);
    };
  }

  messages(): unknown[] {
    return this.delivered.map((d) => d.message);
  }
}

class FakeProducer implements KafkaProducerLike {
  private connected = false;

  constructor(private readonly broker: FakeBroker) {}

  async connect(): Promise<void> {
    this.broker.connects += 1;
    if (this.broker.behaviour === 'refuse') throw new KafkaJSConnectionError('Connection error: connect ECONNREFUSED 127.0.0.1:9091');
    if (this.broker.behaviour === 'hang') await new Promise(() => undefined);
    this.connected = true;
  }

  async send(record: ProducerRecord): Promise<RecordMetadata[]> {
    if (!this.connected || this.broker.behaviour !== 'up') throw new KafkaJSConnectionError('Connection error: socket closed');
    if (this.broker.dropAfterSends !== null && this.broker.dropAfterSends-- <= 0) {
      this.broker.dropAfterSends = null;
      this.connected = false;
      throw new KafkaJSConnectionError('Connection error: read ECONNRESET');
    }
    const bad = this.broker.rejectContaining;
    if (bad !== null && record.messages.some((m) => String(m.value).includes(bad))) {
      throw new KafkaJSProtocolError({ message: 'The request included a message larger than the max message size the server will accept', type: 'MESSAGE_TOO_LARGE', code: 10, retriable: false } as unknown as Error);
    }
    for (const m of record.messages) this.broker.delivered.push({ topic: record.topic, message: JSON.parse(String(m.value)) });
    return [];
  }

  async disconnect(): Promise<void> {
    this.connected = false;
  }
}

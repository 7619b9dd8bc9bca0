/**
 * Events from the facility's Kafka (contract section 7): the data migration service announces
 * `migration_complete` (raw data of a run is on the offline cluster) and the calibration
 * pipeline `run_corrections_complete` (proc data is ready), as JSON objects with `event`,
 * `proposal` and `run`. On the online cluster (hosts `exflonc*`) the topics and names differ.
 *
 * One consumer group per database (its db_id), so that every database gets every event; new
 * groups start at the newest messages. kafkajs commits a message's offset once `eachMessage`
 * has returned, and the sink has persisted the event by then: a restart resumes after the last
 * event taken, losing none.
 */
import os from 'node:os';
import { Kafka, logLevel, type Consumer, type EachMessagePayload } from 'kafkajs';
import { z } from 'zod';
import type { EventKind, EventSink, EventSource, SourceNotice } from './events.js';
import { excerpt } from '../text.js';

export const KAFKA_SOURCE = 'kafka';

export interface KafkaProfile {
  brokers: string[];
  topics: string[];
  /** Event names and the kind of event each is. */
  events: Record<string, EventKind>;
}

/** The facility's brokers, topics and event names, as the reference listener uses them. */
export const KAFKA_PROFILES = {
  maxwell: {
    brokers: ['exflwgs06:9091'],
    topics: ['test.r2d2', 'cal.offline-corrections'],
    events: { migration_complete: 'raw', run_corrections_complete: 'proc' },
  },
  onc: {
    brokers: ['exflwgs06:9091'],
    topics: ['test.euxfel.hed.daq', 'test.euxfel.hed.cal'],
    events: { daq_run_complete: 'raw', online_correction_complete: 'proc' },
  },
} as const satisfies Record<string, KafkaProfile>;

export type KafkaProfileName = keyof typeof KAFKA_PROFILES;

/** The online cluster's hosts use its own topics; every other host the offline cluster's. */
export function defaultKafkaProfile(hostname: string = os.hostname()): KafkaProfileName {
  return hostname.startsWith('exflonc') ? 'onc' : 'maxwell';
}

/** The part of a kafkajs consumer this source uses: what a test fake implements. */
export type KafkaConsumerLike = Pick<Consumer, 'connect' | 'subscribe' | 'run' | 'disconnect'>;
export type KafkaConsumerFactory = (opts: { brokers: string[]; groupId: string; clientId: string; notice: SourceNotice }) => KafkaConsumerLike;

const NumberLike = z.union([z.number().int().nonnegative(), z.string().regex(/^\s*\d+\s*$/)]).transform(Number);
const RunMessage = z.object({ event: z.string(), proposal: NumberLike, run: NumberLike });

/** A real kafkajs consumer whose log goes to the backend's log. */
export const kafkajsConsumer: KafkaConsumerFactory = ({ brokers, groupId, clientId, notice }) => {
  const kafka = new Kafka({
    clientId,
    brokers,
    logLevel: logLevel.WARN,
    logCreator: () => ({ level, log }) => {
      const text = `kafka: ${log.message}`;
      notice(level === logLevel.ERROR ? 'error' : level === logLevel.WARN ? 'warn' : 'debug', text);
    },
  });
  return kafka.consumer({ groupId });
};

export interface KafkaSourceOptions {
  profile: KafkaProfile;
  /** The database's db_id: names the consumer group. */
  dbId: string;
  createConsumer?: KafkaConsumerFactory;
}

export class KafkaSource implements EventSource {
  readonly name = KAFKA_SOURCE;
  /** Kafka never runs out of events. */
  readonly ended = new Promise<void>(() => undefined);
  private consumer: KafkaConsumerLike | null = null;

  constructor(private readonly opts: KafkaSourceOptions) {}

  get groupId(): string {
    return `xfel-da-damnit-ts-${this.opts.dbId}`;
  }

  async start(sink: EventSink, notice: SourceNotice): Promise<void> {
    const create = this.opts.createConsumer ?? kafkajsConsumer;
    const consumer = create({
      brokers: this.opts.profile.brokers,
      groupId: this.groupId,
      clientId: `xfel-da-damnit-ts-${os.hostname()}-${process.pid}`,
      notice,
    });
    this.consumer = consumer;
    await consumer.connect();
    await consumer.subscribe({ topics: this.opts.profile.topics, fromBeginning: false });
    await consumer.run({ eachMessage: async (payload) => this.take(payload, sink, notice) });
    notice('info', `listening to Kafka at ${this.opts.profile.brokers.join(', ')}, topics ${this.opts.profile.topics.join(', ')}`);
  }

  /** One message: an event for the sink, or a notice saying why it was passed over. */
  private take({ topic, partition, message }: EachMessagePayload, sink: EventSink, notice: SourceNotice): void {
    const where = `${topic}[${partition}]@${message.offset}`;
    let json: unknown;
    try {
      json = JSON.parse(message.value?.toString('utf8') ?? '');
    } catch {
      notice('warn', `Kafka message ${where} is not JSON: skipped`);
      return;
    }
    const event = (json as { event?: unknown } | null)?.event;
    const kind = typeof event === 'string' ? (this.opts.profile.events as Record<string, EventKind>)[event] : undefined;
    if (kind === undefined) {
      notice('debug', `Kafka message ${where}: event ${excerpt(String(JSON.stringify(event)))} is not one we act on`);
      return;
    }
    const parsed = RunMessage.safeParse(json);
    if (!parsed.success) {
      notice('warn', `Kafka message ${where} (${excerpt(String(event))}) has no usable proposal and run: skipped`);
      return;
    }
    const timestamp = Number(message.timestamp);
    // A sink that cannot record the event throws: kafkajs then does not commit, and retries.
    sink({
      proposal: parsed.data.proposal,
      run: parsed.data.run,
      kind,
      source: KAFKA_SOURCE,
      time: Number.isFinite(timestamp) && timestamp > 0 ? timestamp / 1000 : Date.now() / 1000,
    });
  }

  async close(): Promise<void> {
    await this.consumer?.disconnect();
  }
}

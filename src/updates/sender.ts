/**
 * Sends update messages to one Kafka topic in the background. Processing never waits for the
 * broker: `send` only queues. A broker that refuses, hangs or drops the connection is retried
 * with growing pauses, saying so once (and once more when it is back); the messages wait in
 * order meanwhile. A message the broker rejects as such (too large, not allowed) is dropped with
 * a warning, so that it cannot hold up the others. Nothing here touches the database: what was
 * recorded stays recorded whatever the broker does.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Producer } from 'kafkajs';
import { excerpt } from '../text.js';
import type { UpdateMessage } from './messages.js';

/** The part of a kafkajs producer we use: what a test fake implements. */
export type KafkaProducerLike = Pick<Producer, 'connect' | 'send' | 'disconnect'>;
export type KafkaProducerFactory = (brokers: string[]) => KafkaProducerLike;

export interface SenderNotices {
  warn(text: string): void;
  info(text: string): void;
}

export interface UpdateSenderOptions {
  brokers: string[];
  topic: string;
  createProducer: KafkaProducerFactory;
  notices: SenderNotices;
  /** A connect or send taking longer counts as failed: a broker that hangs. */
  operationTimeoutMs?: number;
  /** Pause before the first retry; it doubles up to `maxRetryMs`. */
  retryMs?: number;
  maxRetryMs?: number;
  /** Messages kept while the broker is away; beyond, the oldest go (the GUI rereads the database on open). */
  maxHeld?: number;
  /** Added to the warning about an unreachable broker, e.g. how to turn the messages off. */
  unreachableHint?: string;
}

/** Messages in one send: the GUI gets them in order, without a round trip each. */
const BATCH = 500;

class OperationTimeout extends Error {}

async function withTimeout<T>(operation: Promise<T>, ms: number, what: string): Promise<T> {
  const controller = new AbortController();
  const timer = sleep(ms, undefined, { signal: controller.signal, ref: false }).then(
    () => {
      throw new OperationTimeout(`no answer ${what} within ${ms / 1000} s`);
    },
    () => undefined as never,
  );
  try {
    return await Promise.race([operation, timer]);
  } finally {
    controller.abort();
  }
}

/**
 * The broker refused this message (or batch) itself: a protocol error it will not change its
 * mind about. Connection trouble, timeouts and retriable errors are not rejections.
 */
function isRejection(err: unknown): boolean {
  const e = err as { name?: string; retriable?: boolean; cause?: unknown } | null;
  if (e?.name === 'KafkaJSProtocolError' && e.retriable === false) return true;
  return e?.cause !== undefined && e.cause !== err && isRejection(e.cause);
}

export class UpdateSender {
  private readonly held: UpdateMessage[] = [];
  private producer: KafkaProducerLike | null = null;
  private connected = false;
  private draining: Promise<void> | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private retryDelay: number;
  /** Warned that the broker cannot be reached; cleared by the next delivery. */
  private failing = false;
  private closed = false;
  private dropped = 0;
  private readonly rejectionsSeen = new Set<string>();
  private delivered = 0;

  constructor(private readonly opts: UpdateSenderOptions) {
    this.retryDelay = opts.retryMs ?? 1_000;
  }

  get brokers(): string[] {
    return this.opts.brokers;
  }

  /** Messages delivered so far (for tests and the closing note). */
  get deliveredCount(): number {
    return this.delivered;
  }

  /** Queues a message; returns at once. */
  send(message: UpdateMessage): void {
    if (this.closed) return;
    this.held.push(message);
    const max = this.opts.maxHeld ?? 10_000;
    if (this.held.length > max) {
      this.held.splice(0, this.held.length - max);
      if (this.dropped++ === 0) {
        this.opts.notices.warn(`more than ${max} update messages waiting for the broker: the oldest are dropped`);
      }
    }
    this.pump();
  }

  private pump(): void {
    if (this.draining || this.retryTimer) return;
    this.draining = this.drain().finally(() => {
      this.draining = null;
    });
  }

  private async drain(): Promise<void> {
    const timeout = this.opts.operationTimeoutMs ?? 10_000;
    while (this.held.length > 0) {
      const batch = this.held.slice(0, BATCH);
      try {
        if (!this.connected) {
          this.producer ??= this.opts.createProducer(this.opts.brokers);
          await withTimeout(this.producer.connect(), timeout, `connecting to ${this.opts.brokers.join(', ')}`);
          this.connected = true;
        }
        await this.deliver(batch, timeout);
      } catch (err) {
        this.retryLater(err as Error);
        return;
      }
    }
  }

  /** Sends a batch; one the broker rejects is sent again message by message, to drop only the bad ones. */
  private async deliver(batch: UpdateMessage[], timeout: number): Promise<void> {
    try {
      await this.sendBatch(batch, timeout);
      return;
    } catch (err) {
      if (!isRejection(err)) throw err;
      if (batch.length === 1) {
        this.held.shift();
        this.noteRejection(batch[0] as UpdateMessage, err as Error);
        return;
      }
    }
    for (const message of batch) await this.deliver([message], timeout);
  }

  private async sendBatch(batch: UpdateMessage[], timeout: number): Promise<void> {
    const producer = this.producer as KafkaProducerLike;
    await withTimeout(
      producer.send({ topic: this.opts.topic, messages: batch.map((m) => ({ value: JSON.stringify(m) })) }),
      timeout,
      `sending to ${this.opts.topic}`,
    );
    this.held.splice(0, batch.length);
    this.delivered += batch.length;
    this.retryDelay = this.opts.retryMs ?? 1_000;
    if (this.failing) {
      this.failing = false;
      this.opts.notices.info(`Kafka at ${this.opts.brokers.join(', ')} takes update messages again`);
    }
  }

  private noteRejection(message: UpdateMessage, err: Error): void {
    const reason = excerpt(err.message);
    if (this.rejectionsSeen.has(reason)) return;
    this.rejectionsSeen.add(reason);
    this.opts.notices.warn(`Kafka rejected a ${message.msg_kind} update message (${reason}): dropped; later ones are still sent`);
  }

  private retryLater(err: Error): void {
    if (!this.failing) {
      this.failing = true;
      this.opts.notices.warn(
        `cannot send update messages to the GUI through Kafka at ${this.opts.brokers.join(', ')} ` +
          `(${excerpt(err.message)}): processing goes on, the messages wait and are retried in the background` +
          (this.opts.unreachableHint ? `; ${this.opts.unreachableHint}` : ''),
      );
    }
    this.resetConnection();
    if (this.closed) return;
    const delay = this.retryDelay;
    this.retryDelay = Math.min(delay * 2, this.opts.maxRetryMs ?? 30_000);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.pump();
    }, delay);
    this.retryTimer.unref();
  }

  /** Drops a connection that failed; its disconnect may hang as well, so it is not waited for. */
  private resetConnection(): void {
    const producer = this.producer;
    this.producer = null;
    this.connected = false;
    if (producer) void producer.disconnect().catch(() => undefined);
  }

  /**
   * Stops taking messages; waits up to `timeoutMs` for those queued unless the broker is known
   * to be away. Returns how many were not delivered.
   */
  async close(timeoutMs = 5_000): Promise<{ undelivered: number }> {
    this.closed = true;
    if (this.held.length > 0 && !this.failing) {
      const deadline = sleep(timeoutMs, undefined, { ref: false });
      const drained = (async () => {
        while (this.draining && this.held.length > 0) await this.draining;
      })();
      await Promise.race([drained, deadline]);
    }
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const producer = this.producer;
    this.producer = null;
    if (producer && this.connected) {
      await withTimeout(producer.disconnect(), timeoutMs, 'disconnecting').catch(() => undefined);
    }
    this.connected = false;
    return { undelivered: this.held.length };
  }
}

/**
 * What our commands tell DAMNIT's GUI, in the reference backend's messages (messages.ts):
 * variables set, values recorded, processings queued, running and finished. One per command or
 * backend; sending never blocks or fails processing (sender.ts). Where they go: broker-choice.ts.
 */
import { appendFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';
import type { VariableResultMessage } from '../context/protocol.js';
import type { SettingsSource } from '../db/config-keys.js';
import { programName } from '../program-name.js';
import {
  processingFinishedMessage,
  processingStateMessage,
  runValuesUpdatedMessage,
  updateTopic,
  variableSetMessage,
  type ProcessingState,
  type UpdateMessage,
  type VariableMetadata,
} from './messages.js';
import { UpdateSender, type KafkaProducerFactory, type SenderNotices } from './sender.js';
import { brokerProblem, chooseUpdateBroker, type BrokerChoice } from './broker-choice.js';

export { chooseUpdateBroker, type BrokerChoice } from './broker-choice.js';

/** The reference re-announces a running processing this often, for a GUI opened meanwhile. */
export const HEARTBEAT_MS = 10_000;

/** The real kafkajs producer: no retries of its own (the sender retries) and short timeouts. */
export const kafkajsProducer: KafkaProducerFactory = (brokers) =>
  new Kafka({
    clientId: `damnit-ts-${os.hostname()}-${process.pid}`,
    brokers,
    logLevel: logLevel.NOTHING,
    connectionTimeout: 3_000,
    requestTimeout: 10_000,
    retry: { retries: 0 },
  }).producer({ allowAutoTopicCreation: true });

/** `file:PATH`: a producer that appends each message value as a line of PATH. */
export function fileProducer(file: string): KafkaProducerFactory {
  return () => ({
    connect: async () => undefined,
    disconnect: async () => undefined,
    send: async ({ messages }) => {
      appendFileSync(file, messages.map((m) => `${String(m.value)}\n`).join(''));
      return [];
    },
  });
}

export interface GuiUpdatesOptions {
  dbId: string;
  /** Resolves relative `file:` paths (the database directory). */
  root: string;
  notices: SenderNotices;
  /** Test seam: the kafkajs producer otherwise. */
  createProducer?: KafkaProducerFactory;
  heartbeatMs?: number;
  operationTimeoutMs?: number;
}

/** Where and as whom this process runs, as the reference reports it. */
function here(): { hostname: string; username: string } {
  return { hostname: os.hostname(), username: os.userInfo().username };
}

export interface ProcessingOf {
  proposal: number;
  run: number;
  data: ProcessingState['data'];
}

export class GuiUpdates {
  private sender: UpdateSender | null = null;
  private broker: string | null = null;
  private readonly heartbeats = new Map<string, NodeJS.Timeout>();

  constructor(private readonly opts: GuiUpdatesOptions) {}

  /**
   * Points the messages at the broker `choice` names; a changed choice takes effect here, for
   * the messages that follow (the old sender is let go without waiting).
   */
  useBroker(choice: BrokerChoice): void {
    if (choice.value === this.broker) return;
    const problem = brokerProblem(choice.value);
    if (problem !== null) {
      this.opts.notices.warn(`update messages: ${choice.from} ${problem}; no update messages are sent until it is fixed`);
      this.replace(null, choice.value);
      return;
    }
    if (choice.value === 'none') {
      this.replace(null, choice.value);
      return;
    }
    const file = choice.value.startsWith('file:') ? path.resolve(this.opts.root, choice.value.slice(5)) : null;
    const sender = new UpdateSender({
      brokers: file ? [choice.value] : choice.value.split(',').map((b) => b.trim()),
      topic: updateTopic(this.opts.dbId),
      createProducer: file ? fileProducer(file) : (this.opts.createProducer ?? kafkajsProducer),
      notices: this.opts.notices,
      operationTimeoutMs: this.opts.operationTimeoutMs,
      unreachableHint: `if no GUI needs them: '${programName()} db-config update_broker none'`,
    });
    this.replace(sender, choice.value);
  }

  private replace(sender: UpdateSender | null, broker: string): void {
    const old = this.sender;
    this.sender = sender;
    this.broker = broker;
    if (old) void old.close(0);
  }

  /** The messages' topic. */
  get topic(): string {
    return updateTopic(this.opts.dbId);
  }

  private send(message: UpdateMessage): void {
    this.sender?.send(message);
  }

  /** variable_set for each stored (not transient) variable, as the reference does each time it reads the context. */
  variablesSet(variables: readonly (VariableMetadata & { transient?: boolean })[]): void {
    for (const v of variables) if (!v.transient) this.send(variableSetMessage(v));
  }

  /** run_values_updated for what a run just recorded: values, errors, and start_time. */
  valuesRecorded(proposal: number, run: number, results: { variables: readonly VariableResultMessage[]; startTime: number | null }): void {
    const values: string[] = results.startTime !== null ? ['start_time'] : [];
    const errors: string[] = [];
    for (const v of results.variables) {
      if (v.attributes !== null && 'error' in v.attributes) errors.push(v.name);
      else if (v.value !== null) values.push(v.name);
    }
    if (values.length + errors.length === 0) return;
    this.send(runValuesUpdatedMessage(proposal, run, { values, errors }));
  }

  /** A processing waiting for a slot here: PENDING, nobody's yet. Returns its processing id. */
  processingQueued(of: ProcessingOf, processingId: string = randomUUID()): string {
    this.send(
      processingStateMessage({
        processing_id: processingId, ...of, status: 'PENDING', hostname: '', username: '', slurm_cluster: null, slurm_job_id: '',
      }),
    );
    return processingId;
  }

  /**
   * A processing submitted as a Slurm job (PENDING until the job reports itself running), as
   * the reference announces its jobs. Returns its processing id.
   */
  processingSubmitted(of: ProcessingOf, slurm: { cluster: string | null; jobId: string }, processingId: string = randomUUID()): string {
    this.send(
      processingStateMessage({
        processing_id: processingId, ...of, status: 'PENDING', hostname: '', username: '', slurm_cluster: slurm.cluster, slurm_job_id: slurm.jobId,
      }),
    );
    return processingId;
  }

  /**
   * A processing running in this process (or in the Slurm job given): RUNNING, said again every
   * HEARTBEAT_MS until it finishes. Returns its processing id.
   */
  processingRunning(
    of: ProcessingOf,
    opts: { processingId?: string; slurm?: { cluster: string | null; jobId: string }; who?: { hostname: string; username: string } } = {},
  ): string {
    const processingId = opts.processingId ?? randomUUID();
    const message = processingStateMessage({
      processing_id: processingId,
      ...of,
      status: 'RUNNING',
      ...(opts.who ?? here()),
      slurm_cluster: opts.slurm?.cluster ?? null,
      slurm_job_id: opts.slurm?.jobId ?? '',
    });
    this.send(message);
    this.stopHeartbeat(processingId);
    const timer = setInterval(() => this.send(message), this.opts.heartbeatMs ?? HEARTBEAT_MS);
    timer.unref();
    this.heartbeats.set(processingId, timer);
    return processingId;
  }

  processingFinished(processingId: string): void {
    this.stopHeartbeat(processingId);
    this.send(processingFinishedMessage(processingId));
  }

  private stopHeartbeat(processingId: string): void {
    const timer = this.heartbeats.get(processingId);
    if (timer) clearInterval(timer);
    this.heartbeats.delete(processingId);
  }

  /** Sends what is queued (waiting at most `timeoutMs` for a broker not known to be away). */
  async close(timeoutMs?: number): Promise<{ undelivered: number }> {
    for (const id of [...this.heartbeats.keys()]) this.stopHeartbeat(id);
    const sender = this.sender;
    this.sender = null;
    return sender ? sender.close(timeoutMs) : { undelivered: 0 };
  }
}

/** A command's GuiUpdates for a database, pointed at the broker its settings choose. */
export function openGuiUpdates(
  db: { metameta: SettingsSource; dir: { root: string } },
  notices: SenderNotices,
  opts: { option?: string; createProducer?: KafkaProducerFactory; heartbeatMs?: number } = {},
): GuiUpdates {
  const updates = new GuiUpdates({
    dbId: String(db.metameta.get('db_id') ?? ''),
    root: db.dir.root,
    notices,
    createProducer: opts.createProducer,
    heartbeatMs: opts.heartbeatMs,
  });
  updates.useBroker(chooseUpdateBroker(db.metameta, opts.option));
  return updates;
}

/** A one-shot command's notices: warnings on stderr, with how to silence them for good. */
export const COMMAND_NOTICES: SenderNotices = {
  warn: (text) => process.stderr.write(`warning: ${text}\n`),
  info: () => undefined,
};

/** How long a command waits at its end for update messages still on their way. */
export const COMMAND_FLUSH_MS = 3_000;

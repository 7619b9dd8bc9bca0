/**
 * What every event source gives the backend: "the raw data of run R is complete" or "the
 * calibrated (proc) data of run R is complete". Sources: the file system (fs-source.ts),
 * standard input for `listen --test` (stdin-source.ts) and the facility's Kafka (kafka-source.ts).
 */

/** Which data of a run became available; raw runs data="raw" variables, proc data="proc" ones. */
export type EventKind = 'raw' | 'proc';
export const EVENT_KINDS: readonly EventKind[] = ['raw', 'proc'];

export interface RunEvent {
  proposal: number;
  run: number;
  kind: EventKind;
  /** The source's name, for the log: fs, stdin, kafka. */
  source: string;
  /** When the event happened, epoch seconds (a Kafka record's timestamp, else when it was seen). */
  time: number;
}

/**
 * Takes an event in: returns once it is safely recorded (persisted), so a source may then
 * acknowledge it (Kafka commits its offset after this); throws when it could not be recorded.
 */
export type EventSink = (event: RunEvent) => void;

/** Something a source wants the log to say (an unreadable line, a message for nobody). */
export type SourceNotice = (level: 'debug' | 'info' | 'warn' | 'error', message: string) => void;

export interface EventSource {
  readonly name: string;
  /** Starts delivering events to `sink`; resolves once the source is listening. */
  start(sink: EventSink, notice: SourceNotice): Promise<void>;
  /** Resolves when the source has no more events to give (end of standard input); some never do. */
  readonly ended: Promise<void>;
  /** Stops delivering events and releases what the source holds. */
  close(): Promise<void>;
}

export function nowSeconds(): number {
  return Date.now() / 1000;
}

/** `r42 raw`, how the log names an event. */
export function describeEvent(event: Pick<RunEvent, 'run' | 'kind'>): string {
  return `r${event.run} ${event.kind}`;
}

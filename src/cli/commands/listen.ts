import { fileURLToPath } from 'node:url';
import { Option, type Command } from 'commander';
import { requireDatabaseDir, type DatabaseDir } from '../../database-dir.js';
import type { EventSource } from '../../listener/events.js';
import type { Listener } from '../../listener/listener.js';
import { LOG_FORMATS, type LogFormat } from '../../log-format.js';
import { proposalPath } from '../../runs/proposal-path.js';
import type { JobStore } from '../../scheduler/job-store.js';
import { prepareToWrite } from '../../sharing.js';
import type { BackendStatus } from '../../supervisor/control.js';
import { UsageError } from '../errors.js';
import { brokerProblem } from '../../updates/broker-choice.js';

export type SourceName = 'fs' | 'kafka';

export interface ListenOptions {
  test?: boolean;
  daemonize?: boolean;
  source: SourceName;
  settle: string;
  rescan: string;
  kafkaBrokers?: string;
  updateBroker?: string;
  logFormat: LogFormat;
}

/** The built CLI, which Supervisor runs as the backend. */
const CLI_MAIN = fileURLToPath(new URL('../main.js', import.meta.url));

/** The options `listen` and `backend start` share: where events come from and how to log. */
export function addListenerOptions(command: Command): Command {
  return command
    .addOption(new Option('--source <source>', 'where new runs are noticed: the file system, or the facility Kafka').choices(['fs', 'kafka']).default('fs'))
    .option('--settle <seconds>', 'fs: how long a run directory must stay complete and unchanged', '10')
    .option('--rescan <seconds>', 'fs: how often to look at raw/ and proc/ again, for changes made on other machines', '15')
    .option('--kafka-brokers <list>', 'kafka: comma-separated host:port list instead of the facility brokers')
    .option('--update-broker <broker>', "where the GUI's update messages go: host:port[,host:port], 'none', or file:PATH (default: AMORE_BROKER, else db-config update_broker, else the facility broker)")
    .addOption(new Option('--log-format <format>', 'amore.log as text lines, or JSON objects for machines').choices(LOG_FORMATS).default('text'));
}

function seconds(text: string, option: string): number {
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value < 0) {
    throw new UsageError(`${option} needs a number of seconds, got '${text}'`);
  }
  return value;
}

/** The backend's command line as Supervisor runs it: the same options, explicitly. */
export function listenerCommandLine(opts: ListenOptions, debug: boolean): string[] {
  const args = [process.execPath, CLI_MAIN];
  if (debug) args.push('--debug');
  args.push('listen', '--source', opts.source, '--log-format', opts.logFormat);
  if (opts.source === 'fs') args.push('--settle', opts.settle, '--rescan', opts.rescan);
  if (opts.kafkaBrokers !== undefined) args.push('--kafka-brokers', opts.kafkaBrokers);
  if (opts.updateBroker !== undefined) args.push('--update-broker', opts.updateBroker);
  return args;
}

/** Checks the options, so that a mistake shows now rather than in the log of a daemon. */
export function validateListenOptions(opts: ListenOptions): void {
  seconds(opts.settle, '--settle');
  seconds(opts.rescan, '--rescan');
  if (opts.kafkaBrokers !== undefined && opts.kafkaBrokers.split(',').some((b) => !/^[^\s:,]+:\d+$/.test(b.trim()))) {
    throw new UsageError(`--kafka-brokers needs host:port[,host:port...], got '${opts.kafkaBrokers}'`);
  }
  const updateProblem = opts.updateBroker === undefined ? null : brokerProblem(opts.updateBroker);
  if (updateProblem !== null) throw new UsageError(`--update-broker: ${updateProblem}`);
}

export function formatStatus(status: BackendStatus): string {
  if (status.supervisord === 'not-running') return 'damnit: supervisord is not running';
  return `damnit: ${status.state}${status.description ? ` (${status.description})` : ''}`;
}

/** Starts the backend under Supervisor (writing supervisord.conf when it must), and says how it went. */
export async function startDaemon(dir: DatabaseDir, opts: ListenOptions, debug: boolean): Promise<BackendStatus> {
  validateListenOptions(opts);
  // supervisord and the backend it starts write here, with this directory's modes.
  prepareToWrite(dir);
  const { ensureBackendRunning } = await import('../../supervisor/control.js');
  const { describeCrashLoop, waitUntilReady } = await import('../../supervisor/health.js');
  const startedAt = Date.now();
  const status = await ensureBackendRunning(dir, { command: listenerCommandLine(opts, debug) });
  if (status.supervisord !== 'running' || status.state !== 'RUNNING') {
    console.log(formatStatus(status));
    process.stderr.write(`The backend is not running: see the end of ${dir.logFile}\n`);
    process.exitCode = 1;
    return status;
  }
  // RUNNING is what Supervisor says of any process it started; wait for the backend's own word.
  const readiness = await waitUntilReady(dir, status.pid, startedAt);
  if (readiness.state === 'crash-looping') {
    console.log(describeCrashLoop(readiness, 'since it was started'));
    process.exitCode = 1;
    return status;
  }
  console.log(formatStatus(status) + (readiness.state === 'starting' ? ' (still starting: see backend status)' : ''));
  return status;
}

/** The event sources' modules, loaded when the backend starts (kafkajs only for Kafka). */
async function loadSources(opts: ListenOptions) {
  const [{ FileSystemSource }, kafka, { StdinSource }] = await Promise.all([
    import('../../listener/fs-source.js'),
    opts.source === 'kafka' && !opts.test ? import('../../listener/kafka-source.js') : null,
    import('../../listener/stdin-source.js'),
  ]);
  return { FileSystemSource, kafka, StdinSource };
}

function buildSources(
  opts: ListenOptions,
  ctx: { proposal: number; proposalRoot: string; store: JobStore; dbId: string },
  { FileSystemSource, kafka, StdinSource }: Awaited<ReturnType<typeof loadSources>>,
): EventSource[] {
  if (opts.test) return [new StdinSource(process.stdin)];
  if (kafka !== null) {
    const { defaultKafkaProfile, KAFKA_PROFILES, KafkaSource } = kafka;
    const profile = KAFKA_PROFILES[defaultKafkaProfile()];
    const brokers = opts.kafkaBrokers?.split(',').map((b) => b.trim()) ?? [...profile.brokers];
    return [new KafkaSource({ profile: { ...profile, brokers, topics: [...profile.topics] }, dbId: ctx.dbId })];
  }
  const { store, proposal } = ctx;
  const adopted = store.getFact('fs_adopted') !== null;
  return [
    new FileSystemSource({
      proposal,
      proposalRoot: ctx.proposalRoot,
      settleMs: seconds(opts.settle, '--settle') * 1000,
      rescanMs: Math.max(0.05, seconds(opts.rescan, '--rescan')) * 1000,
      known: (run, kind) => store.has(proposal, run, kind),
      adoptExisting: adopted
        ? null
        : (events) =>
            store.transaction(() => {
              store.adopt(events);
              store.setFact('fs_adopted', new Date().toISOString());
            }),
    }),
  ];
}

export function register(program: Command): void {
  const command = program
    .command('listen')
    .description('Run the backend: notice new runs and compute the variables of context.py for them')
    .argument('[directory]', 'the database directory (default: the current directory)')
    .addOption(new Option('--test', "read events from standard input, as lines '<proposal> <run> [raw|proc|all]'").conflicts(['daemonize', 'source']))
    .option('--daemonize', 'run the backend under Supervisor (supervisord.conf in the database directory) instead of here');
  addListenerOptions(command).action(async (directory: string | undefined, opts: ListenOptions, cmd: Command) => {
    const debug = Boolean(cmd.optsWithGlobals().debug);
    const dir = requireDatabaseDir(directory ?? process.cwd());
    validateListenOptions(opts);
    if (opts.daemonize) {
      await startDaemon(dir, opts, debug);
      return;
    }
    await listen(dir, opts, debug);
  });
}

/** The backend in this process, until a signal (or, with --test, the end of the input). */
async function listen(dir: DatabaseDir, opts: ListenOptions, debug: boolean): Promise<void> {
  const { openDatabase } = await import('../../db/database.js');
  const { createBackendLogger } = await import('../../log.js');
  const { Listener } = await import('../../listener/listener.js');
  const { COMMAND_FLUSH_MS, openGuiUpdates } = await import('../../updates/gui-updates.js');
  const sourceModules = await loadSources(opts);
  const db = openDatabase(dir);
  try {
    // Said once, before anything starts: without its data the backend has nothing to watch.
    proposalPath(dir, db);
  } catch (err) {
    db.close();
    throw err;
  }
  // Under Supervisor, standard output already goes to amore.log: no second copy there.
  const echo = process.env.SUPERVISOR_ENABLED ? undefined : process.stderr;
  const { logger, close } = createBackendLogger({ file: dir.logFile, format: opts.logFormat, echo, level: debug ? 'debug' : 'info' });
  const updates = openGuiUpdates(db, { warn: (text) => logger.warn(text), info: (text) => logger.info(text) }, { option: opts.updateBroker });
  let listener: Listener;
  try {
    listener = await Listener.start({
      dir,
      db,
      logger,
      sources: (ctx) => buildSources(opts, ctx, sourceModules),
      updates,
      updateBrokerOption: opts.updateBroker,
    });
  } catch (err) {
    logger.error(`the backend could not start: ${(err as Error).message}`);
    await updates.close(0);
    close();
    db.close();
    throw err;
  }
  if (opts.test && process.stdin.isTTY) {
    process.stderr.write(`Enter '<proposal> <run> [raw|proc|all]' lines; Ctrl-D to finish.\n`);
  }

  const stopped = new Promise<string>((resolve) => {
    // `on`, not `once`: the shim manager's own handler re-raises a signal nobody else listens to.
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => resolve(`stopping on ${signal}`));
    void listener.finished.then(() => resolve('input ended and its runs are done: stopping'));
  });
  const reason = await stopped;
  const { running } = listener.activity;
  logger.info(running > 0 ? `${reason}; ${running} runs cut short will be processed again at the next start` : reason);
  await listener.stop();
  const { undelivered } = await updates.close(COMMAND_FLUSH_MS);
  if (undelivered > 0) logger.warn(`${undelivered} update messages for the GUI were not delivered`);
  close();
  db.close();
  // Shims still running (cut short) are stopped as this process exits.
  process.exit(0);
}

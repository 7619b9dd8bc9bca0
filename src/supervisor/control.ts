/**
 * Starting, asking and stopping the supervisord of a database directory, through the same
 * commands a user types: `supervisord -c supervisord.conf` and `supervisorctl -c
 * supervisord.conf ...` (docs/operations.md).
 */
import { constants, existsSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import type { DatabaseDir } from '../database-dir.js';
import { PROGRAM_NAME, supervisordPidFile, writeSupervisordConfig, type SupervisordConfigOptions } from './config.js';
import { processAlive } from '../processes.js';
import { directoryModes, mayAccess } from '../sharing.js';
import { programName } from '../program-name.js';

export class SupervisorError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SupervisorError';
  }
}

/** supervisord or supervisorctl is not installed. */
export class SupervisorUnavailableError extends SupervisorError {
  constructor(command: string) {
    super(
      `Supervisor is not available on this machine ('${command}' was not found on PATH): ` +
        `install it (Debian: apt-get install supervisor; or pip install supervisor)`,
    );
    this.name = 'SupervisorUnavailableError';
  }
}

/** Supervisor's process states (supervisorctl status). */
export const PROGRAM_STATES = ['STOPPED', 'STARTING', 'RUNNING', 'BACKOFF', 'STOPPING', 'EXITED', 'FATAL', 'UNKNOWN'] as const;
export type ProgramState = (typeof PROGRAM_STATES)[number];

/** States Supervisor leaves by itself: worth waiting for them to pass. */
const PASSING_STATES: readonly ProgramState[] = ['STARTING', 'BACKOFF', 'STOPPING'];

export type BackendStatus =
  /** Nothing answers at the address in supervisord.conf. */
  | { supervisord: 'not-running' }
  | {
      supervisord: 'running';
      state: ProgramState;
      /** The program's pid while it runs. */
      pid: number | null;
      /** The rest of supervisorctl's line: `pid 123, uptime 0:00:04`, `Exited too quickly ...`. */
      description: string;
    };

export interface ControlOptions {
  /** Environment for supervisord (and so for the program) and supervisorctl. */
  env?: Record<string, string | undefined>;
  /** How long to wait for the program to settle, or supervisord to exit; 30 s by default. */
  timeoutMs?: number;
}

interface CommandResult {
  exitCode: number;
  output: string;
}

async function runSupervisorCommand(command: string, args: string[], opts: ControlOptions): Promise<CommandResult> {
  const result = await execa(command, args, {
    env: opts.env,
    reject: false,
    stdin: 'ignore',
    all: true,
    timeout: 60_000,
  });
  if (result.failed && result.exitCode === undefined) {
    if ((result.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
      throw new SupervisorUnavailableError(command);
    }
    throw new SupervisorError(`could not run ${command}: ${result.shortMessage}`);
  }
  return { exitCode: result.exitCode ?? -1, output: String(result.all ?? '').trim() };
}

function requireConfig(dbDir: DatabaseDir): string {
  const config = dbDir.supervisordConfig;
  if (!existsSync(config)) {
    throw new SupervisorError(`no supervisord.conf in ${dbDir.root}: the backend has not been set up to run under Supervisor here`);
  }
  if (!mayAccess(config, constants.R_OK)) {
    const mode = statSync(config).mode & 0o777;
    // Narrower than this directory gives its team: an earlier version's file.
    const { private: forTeam } = directoryModes(dbDir.root);
    const older = (mode & forTeam) !== forTeam;
    const why = older
      ? `it was written by an older version for its owner alone: the next ${programName()} command its owner runs here shares it with the team`
      : 'only those who may write this directory can control the backend';
    throw new SupervisorError(`cannot read ${config} (mode ${mode.toString(8).padStart(4, '0')}); ${why}`);
  }
  return config;
}

/**
 * supervisorctl's arguments for a database directory: its supervisord.conf, and on the host
 * supervisord runs on, the loopback address, which always reaches it (the file names the host,
 * for the team's other hosts).
 */
function supervisorctlArgs(dbDir: DatabaseDir): string[] {
  const config = requireConfig(dbDir);
  const server = /^\[supervisorctl\][^[]*?^serverurl=http:\/\/([^:/\]]+|\[[^\]]+\]):(\d+)\s*$/m.exec(readFileSync(config, 'utf8'));
  const [, host, port] = server ?? [];
  const local = host !== undefined && [os.hostname(), 'localhost', '127.0.0.1'].includes(host);
  return local ? ['-c', config, '-s', `http://127.0.0.1:${port}`] : ['-c', config];
}

function oneLine(text: string): string {
  return text.split('\n').map((l) => l.trim()).filter((l) => l !== '').join('; ');
}

/** Parses `supervisorctl status damnit`; exit code 3 just means the program is not running. */
export function parseStatus(output: string): BackendStatus | null {
  const match = new RegExp(`^${PROGRAM_NAME}\\s+([A-Z]+)\\s*(.*)$`, 'm').exec(output);
  const state = match?.[1] as ProgramState | undefined;
  if (!match || !state || !PROGRAM_STATES.includes(state)) return null;
  const description = (match[2] ?? '').trim();
  const pid = state === 'RUNNING' ? Number(/\bpid (\d+)/.exec(description)?.[1] ?? NaN) : NaN;
  return { supervisord: 'running', state, pid: Number.isNaN(pid) ? null : pid, description };
}

/** The program's state as supervisorctl reports it, or that no supervisord answers. */
export async function programStatus(dbDir: DatabaseDir, opts: ControlOptions = {}): Promise<BackendStatus> {
  const result = await runSupervisorCommand('supervisorctl', [...supervisorctlArgs(dbDir), 'status', PROGRAM_NAME], opts);
  const status = parseStatus(result.output);
  if (status) return status;
  if (/refused connection|no such file|connection refused/i.test(result.output)) return { supervisord: 'not-running' };
  if (/no such process/i.test(result.output)) {
    throw new SupervisorError(
      `the supervisord answering for ${dbDir.supervisordConfig} has no program '${PROGRAM_NAME}': ` +
        `another supervisord holds its port; stop it, then start the backend again`,
    );
  }
  if (/requires authentication|401 unauthorized/i.test(result.output)) {
    throw new SupervisorError(
      `the supervisord at the port in ${dbDir.supervisordConfig} refused its credentials: ` +
        `another supervisord holds that port; stop it, then start the backend again`,
    );
  }
  throw new SupervisorError(`supervisorctl status failed (exit ${result.exitCode}): ${oneLine(result.output)}`);
}

/** Polls until the program is out of a passing state (or the time is up), and returns the last status. */
async function settledStatus(dbDir: DatabaseDir, opts: ControlOptions): Promise<BackendStatus> {
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  for (;;) {
    const status = await programStatus(dbDir, opts);
    const settled = status.supervisord === 'running' && !PASSING_STATES.includes(status.state);
    if (settled || Date.now() > deadline) return status;
    await sleep(200);
  }
}

/**
 * Starts supervisord with the directory's supervisord.conf (it starts the program), unless one
 * already answers for it; resolves with the program's state once it has settled.
 */
export async function startSupervisord(dbDir: DatabaseDir, opts: ControlOptions = {}): Promise<BackendStatus> {
  const config = requireConfig(dbDir);
  if ((await programStatus(dbDir, opts)).supervisord === 'running') return settledStatus(dbDir, opts);
  // supervisord returns once it has bound its port and put itself in the background.
  const result = await runSupervisorCommand('supervisord', ['-c', config], opts);
  if (result.exitCode !== 0) {
    throw new SupervisorError(`supervisord -c ${config} failed (exit ${result.exitCode}): ${oneLine(result.output)}`);
  }
  const status = await settledStatus(dbDir, opts);
  if (status.supervisord !== 'running') {
    throw new SupervisorError(`supervisord started but does not answer; see ${dbDir.supervisordLog}`);
  }
  return status;
}

/** `supervisorctl restart damnit`: stops the program (its whole process group) and starts it again. */
export async function restartProgram(dbDir: DatabaseDir, opts: ControlOptions = {}): Promise<BackendStatus> {
  const result = await runSupervisorCommand('supervisorctl', [...supervisorctlArgs(dbDir), 'restart', PROGRAM_NAME], opts);
  if (/refused connection|no such file/i.test(result.output)) {
    throw new SupervisorError(`cannot restart the backend: supervisord is not running for ${dbDir.root}`);
  }
  // Restarting a stopped program reports `ERROR (not running)` for the stop half, then starts it.
  const errors = result.output.split('\n').filter((l) => /ERROR/.test(l) && !/not running/.test(l));
  if (result.exitCode !== 0 || errors.length > 0) {
    throw new SupervisorError(`supervisorctl restart ${PROGRAM_NAME} failed: ${oneLine(result.output)}`);
  }
  return settledStatus(dbDir, opts);
}

/** Signs that the address in supervisord.conf belongs to someone else. */
const FOREIGN_SERVER = /already listening|refused its credentials|has no program/;

/**
 * Makes sure the backend runs under Supervisor: a program stopped or given up (FATAL) by a
 * running supervisord is started again; when no supervisord of this directory answers, a fresh
 * supervisord.conf (new port, new credentials) is written and supervisord started, trying
 * another port if the chosen one was taken meanwhile.
 */
export async function ensureBackendRunning(
  dbDir: DatabaseDir,
  options: SupervisordConfigOptions & ControlOptions,
): Promise<BackendStatus> {
  const current = existsSync(dbDir.supervisordConfig)
    ? await programStatus(dbDir, options).catch((err: unknown) => {
        if (err instanceof SupervisorError && FOREIGN_SERVER.test(err.message)) return null;
        throw err;
      })
    : null;
  if (current?.supervisord === 'running') {
    if (current.state === 'RUNNING' || PASSING_STATES.includes(current.state)) return settledStatus(dbDir, options);
    const result = await runSupervisorCommand('supervisorctl', [...supervisorctlArgs(dbDir), 'start', PROGRAM_NAME], options);
    if (result.exitCode !== 0 && !/already started/.test(result.output)) {
      throw new SupervisorError(`supervisorctl start ${PROGRAM_NAME} failed: ${oneLine(result.output)}`);
    }
    return settledStatus(dbDir, options);
  }
  for (let attempt = 1; ; attempt++) {
    await writeSupervisordConfig(dbDir, options);
    try {
      return await startSupervisord(dbDir, options);
    } catch (err) {
      if (attempt >= 3 || !(err instanceof SupervisorError && FOREIGN_SERVER.test(err.message))) throw err;
    }
  }
}

/** `supervisorctl shutdown`: stops the program, then supervisord; resolves once supervisord has exited. */
export async function shutdownSupervisord(dbDir: DatabaseDir, opts: ControlOptions = {}): Promise<void> {
  if ((await programStatus(dbDir, opts)).supervisord === 'not-running') return;
  const pidText = existsSync(supervisordPidFile(dbDir)) ? readFileSync(supervisordPidFile(dbDir), 'utf8').trim() : '';
  const result = await runSupervisorCommand('supervisorctl', [...supervisorctlArgs(dbDir), 'shutdown'], opts);
  if (result.exitCode !== 0) {
    throw new SupervisorError(`supervisorctl shutdown failed (exit ${result.exitCode}): ${oneLine(result.output)}`);
  }
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0) return;
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  while (processAlive(pid)) {
    if (Date.now() > deadline) throw new SupervisorError(`supervisord (pid ${pid}) has not exited after shutdown`);
    await sleep(100);
  }
}

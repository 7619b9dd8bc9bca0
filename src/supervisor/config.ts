/**
 * supervisord.conf for one database directory (contract section 7, docs/operations.md):
 * program `damnit` runs the backend in the directory, restarted whenever it dies; supervisord
 * listens for supervisorctl over HTTP on a free port of every interface, with random
 * credentials, so that `supervisorctl -c supervisord.conf` works on any host that reads the
 * file (the seed's promise). The file is readable and writable by those who may write the
 * directory (the team, sharing.ts) and by nobody else: it is what lets one control the backend.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { DatabaseDir } from '../database-dir.js';
import { directoryModes, shareOwnedPath } from '../sharing.js';

/** The program name users give supervisorctl. */
export const PROGRAM_NAME = 'damnit';

export interface SupervisordConfigOptions {
  /** The backend's command line, program first (an absolute path is safest). */
  command: string[];
  /** Where supervisord listens for supervisorctl; every interface (`*`) unless given. */
  host?: string;
  /** Where the program's stdout and stderr go; amore.log unless given. */
  programLog?: string;
}

export interface SupervisordConfig {
  path: string;
  /** Where supervisorctl finds supervisord: this host's name and the port, for every host of the team. */
  serverUrl: string;
  port: number;
  username: string;
  password: string;
  pidFile: string;
}

/** supervisord's pid file, next to its configuration. */
export function supervisordPidFile(dbDir: DatabaseDir): string {
  return path.join(dbDir.root, 'supervisord.pid');
}

/**
 * Supervisor reads a value with Python's configparser, then expands `%(name)s` in it; `command`
 * is then split with shlex. A value may therefore hold no line break, and `%` must be doubled.
 */
function configValue(text: string, what: string): string {
  if (/[\r\n\0]/.test(text)) {
    throw new Error(`cannot put ${what} in supervisord.conf: it contains a line break or NUL character`);
  }
  const escaped = text.replaceAll('%', '%%');
  // Supervisor replaces this text wherever it appears, even after a doubled %.
  if (escaped.includes('%(here)s')) throw new Error(`cannot put ${what} in supervisord.conf: it contains '%(here)s'`);
  return escaped;
}

/**
 * A program's log file name is %-expanded twice by supervisor (once when read, once more as a
 * log file name), so its `%` is doubled twice.
 */
function configLogPath(p: string): string {
  return configPath(p).replaceAll('%', '%%');
}

/** A path cannot be quoted in supervisord.conf, so it must survive configparser as it is. */
function configPath(p: string): string {
  if (/\s[;#]/.test(p) || p.trim() !== p) {
    throw new Error(
      `cannot put the path '${p}' in supervisord.conf: supervisor would read a space before ';' ` +
        `or '#' as the start of a comment, and drops spaces at either end`,
    );
  }
  return configValue(p, `the path '${p}'`);
}

/**
 * One argument for supervisor's `command=` line, so that shlex gives it back unchanged.
 * Letters, digits and a few plain symbols stay as they are; other characters are
 * backslash-escaped (shlex keeps the character after a backslash as it is); whitespace goes in
 * single quotes instead, because configparser would take a space followed by `;` or `#` as the
 * start of a comment and would strip a trailing space from the line.
 */
export function quoteCommandArgument(arg: string): string {
  if (arg === '') return "''";
  let quoted = '';
  for (const char of arg) {
    if (/[\p{L}\p{N}_./:=@+,%-]/u.test(char)) quoted += char;
    else if (/\s/u.test(char)) quoted += `'${char}'`;
    else quoted += `\\${char}`;
  }
  return quoted;
}

/** The whole `command=` value: each argument quoted for shlex, then `%` escaped for supervisor. */
export function supervisorCommandLine(command: string[]): string {
  if (command.length === 0) throw new Error('supervisord.conf needs a command for the backend');
  return configValue(command.map(quoteCommandArgument).join(' '), 'the backend command');
}

/** A port nothing listens on now; supervisord binds it moments later. */
async function freePort(host: string): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function urlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/**
 * Writes supervisord.conf in the database directory, replacing any earlier one in one step (a
 * new port and new credentials each time), readable and writable by the team only.
 */
export async function writeSupervisordConfig(
  dbDir: DatabaseDir,
  options: SupervisordConfigOptions,
): Promise<SupervisordConfig> {
  // Checked before anything else, so that a path supervisor cannot take is the error given.
  const directory = configPath(dbDir.root);
  const host = options.host ?? '*';
  const everywhere = host === '*';
  const port = await freePort(everywhere ? '0.0.0.0' : host);
  const username = randomBytes(16).toString('hex');
  const password = randomBytes(32).toString('hex');
  const serverUrl = `http://${urlHost(everywhere ? os.hostname() : host)}:${port}`;
  const pidFile = supervisordPidFile(dbDir);
  const modes = directoryModes(dbDir.root);

  const text = `; Written by damnit-ts for the backend of this database directory. It holds the
; credentials that control the backend: readable by those who may write this directory only.
; Use, on any host: supervisorctl -c supervisord.conf status|restart|stop|start ${PROGRAM_NAME}

[supervisord]
logfile=${configPath(dbDir.supervisordLog)}
pidfile=${configPath(pidFile)}
nodaemon=false
umask=${modes.umask.toString(8).padStart(3, '0')}

[inet_http_server]
port=${urlHost(host)}:${port}
username=${username}
password=${password}

[supervisorctl]
serverurl=${serverUrl}
username=${username}
password=${password}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[program:${PROGRAM_NAME}]
command=${supervisorCommandLine(options.command)}
directory=${directory}
autostart=true
autorestart=true
stopasgroup=true
killasgroup=true
redirect_stderr=true
stdout_logfile=${configLogPath(options.programLog ?? dbDir.logFile)}
stdout_logfile_maxbytes=0
stdout_logfile_backups=0
`;

  const target = dbDir.supervisordConfig;
  const partial = `${target}.${process.pid}.tmp`;
  await rm(partial, { force: true });
  try {
    // Created 0600, so the credentials are never readable by others, not even for a moment;
    // then opened to the team before it takes the place of the old one.
    const file = await open(partial, 'wx', 0o600);
    try {
      await file.writeFile(text);
      await file.sync();
    } finally {
      await file.close();
    }
    shareOwnedPath(partial, 'private', modes);
    await rename(partial, target);
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  }
  return { path: target, serverUrl, port, username, password, pidFile };
}

import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { DatabaseDir } from '../../src/database-dir.js';
import { quoteCommandArgument, writeSupervisordConfig } from '../../src/supervisor/config.js';
import { makeTempDir } from '../helpers/cli.js';

/** Arguments that configparser, supervisor's %-expansion or shlex would each change if left bare. */
const AWKWARD_ARGS = [
  'two words',
  ' ;semicolon after a space',
  'hash after a space #x',
  'trailing space ',
  '%(here)s',
  '%(ENV_HOME)s',
  '100%',
  "it's",
  '"double"',
  'back\\slash',
  '$HOME',
  '',
  'tab\there',
  'ünïcödé',
  '*',
  'non\u00a0breaking',
];

/** The interpreter Supervisor is installed in: the one named on supervisord's #! line. */
async function supervisorPython(): Promise<string> {
  const supervisord = (await execa('which', ['supervisord'])).stdout.trim();
  const shebang = readFileSync(supervisord, 'utf8').split('\n')[0] ?? '';
  const interpreter = /^#!\s*(\S+)/.exec(shebang)?.[1];
  assert.ok(interpreter, `no #! line in ${supervisord}`);
  return interpreter;
}

/** What supervisor itself makes of a supervisord.conf: its own parser, expansion and shlex split. */
async function readWithSupervisor(config: string): Promise<Record<string, unknown>> {
  const script = `
import json, shlex, sys
from supervisor.options import ServerOptions
options = ServerOptions()
options.realize(args=['-c', sys.argv[1]])
[group] = options.process_group_configs
[program] = group.process_configs
[server] = options.server_configs
print(json.dumps({
    'name': program.name,
    'argv': shlex.split(program.command),
    'directory': program.directory,
    'stdout_logfile': program.stdout_logfile,
    'redirect_stderr': program.redirect_stderr,
    'autostart': program.autostart,
    'autorestart': program.autorestart.__name__,
    'stopasgroup': program.stopasgroup,
    'killasgroup': program.killasgroup,
    'logfile': options.logfile,
    'pidfile': options.pidfile,
    'nodaemon': options.nodaemon,
    'umask': oct(options.umask),
    'server': {'host': server['host'], 'port': server['port'], 'username': server['username'], 'password': server['password']},
}))
`;
  const result = await execa(await supervisorPython(), ['-c', script, config]);
  return JSON.parse(result.stdout) as Record<string, unknown>;
}

describe('supervisord.conf', () => {
  let temp: { dir: string; cleanup: () => void };
  let db: DatabaseDir;

  before(() => {
    temp = makeTempDir();
    db = new DatabaseDir(temp.dir);
  });
  after(() => temp?.cleanup());

  test('supervisor reads back the exact command, the directory and every setting', async () => {
    const command = ['/usr/bin/node', '/opt/damnit/main.js', 'listen', ...AWKWARD_ARGS];
    const written = await writeSupervisordConfig(db, { command });
    assert.equal(written.path, path.join(db.root, 'supervisord.conf'));
    const read = await readWithSupervisor(written.path);
    assert.deepEqual(read, {
      name: 'damnit',
      argv: command,
      directory: db.root,
      stdout_logfile: db.logFile,
      redirect_stderr: true,
      autostart: true,
      autorestart: 'RestartUnconditionally',
      stopasgroup: true,
      killasgroup: true,
      logfile: db.supervisordLog,
      pidfile: path.join(db.root, 'supervisord.pid'),
      nodaemon: false,
      // A temporary directory is its owner's alone: so is what supervisord writes there.
      umask: '0o77',
      // Every interface, for supervisorctl on the team's other hosts.
      server: { host: '', port: written.port, username: written.username, password: written.password },
    });
  });

  test('a directory with % in its path: every path reads back exactly', async () => {
    const awkward = new DatabaseDir(path.join(temp.dir, '100% beam'));
    mkdirSync(awkward.root);
    const written = await writeSupervisordConfig(awkward, { command: ['/bin/true'] });
    const read = await readWithSupervisor(written.path);
    assert.equal(read.directory, awkward.root);
    assert.equal(read.stdout_logfile, awkward.logFile);
    assert.equal(read.logfile, awkward.supervisordLog);
    assert.equal(read.pidfile, path.join(awkward.root, 'supervisord.pid'));
  });

  test('the command stays on one line', async () => {
    await writeSupervisordConfig(db, { command: ['/bin/echo', ...AWKWARD_ARGS] });
    const lines = readFileSync(db.supervisordConfig, 'utf8').split('\n');
    assert.equal(lines.filter((l) => l.startsWith('command=')).length, 1);
    assert.equal(lines.filter((l) => /^\s/.test(l) && l.trim() !== '').length, 0, 'no continuation lines');
  });

  test('supervisorctl is pointed at the same address and credentials', async () => {
    const written = await writeSupervisordConfig(db, { command: ['/bin/true'] });
    const text = readFileSync(written.path, 'utf8');
    // This host's name: the address other hosts of the team reach it at.
    assert.equal(written.serverUrl, `http://${os.hostname()}:${written.port}`);
    assert.ok(text.includes(`serverurl=${written.serverUrl}\n`));
    assert.equal(text.split(`username=${written.username}\n`).length, 3, 'server and client share the username');
    assert.equal(text.split(`password=${written.password}\n`).length, 3, 'server and client share the password');
    assert.match(text, /\[rpcinterface:supervisor\]\nsupervisor\.rpcinterface_factory = supervisor\.rpcinterface:make_main_rpcinterface/);
  });

  test('in a directory shared with a group, the file is for the group too, and nobody else', async () => {
    const shared = new DatabaseDir(path.join(temp.dir, 'team'));
    mkdirSync(shared.root);
    chmodSync(shared.root, 0o2775);
    const written = await writeSupervisordConfig(shared, { command: ['/bin/true'] });
    assert.equal(statSync(written.path).mode & 0o777, 0o660);
    assert.equal(statSync(written.path).gid, statSync(shared.root).gid);
    assert.equal(((await readWithSupervisor(written.path)) as { umask: string }).umask, '0o2');
  });

  test('credentials and port are random, and the file is readable by its owner only, even when replacing a wider one', async () => {
    writeFileSync(db.supervisordConfig, 'old');
    chmodSync(db.supervisordConfig, 0o666);
    const first = await writeSupervisordConfig(db, { command: ['/bin/true'] });
    assert.equal(statSync(first.path).mode & 0o777, 0o600);
    const second = await writeSupervisordConfig(db, { command: ['/bin/true'] });
    assert.equal(statSync(second.path).mode & 0o777, 0o600);
    assert.match(first.username, /^[0-9a-f]{32}$/);
    assert.match(first.password, /^[0-9a-f]{64}$/);
    assert.notEqual(first.username, second.username);
    assert.notEqual(first.password, second.password);
    assert.notEqual(first.username, first.password);
  });

  test('what supervisord.conf cannot hold is refused with a reason', async () => {
    await assert.rejects(writeSupervisordConfig(db, { command: ['/bin/echo', 'two\nlines'] }), /line break/);
    await assert.rejects(writeSupervisordConfig(db, { command: [] }), /needs a command/);
    const awkward = new DatabaseDir(path.join(temp.dir, 'a ;b'));
    mkdirSync(awkward.root);
    await assert.rejects(writeSupervisordConfig(awkward, { command: ['/bin/true'] }), /start of a comment/);
  });

  test('quoting leaves plain arguments readable', () => {
    assert.equal(quoteCommandArgument('/usr/bin/node'), '/usr/bin/node');
    assert.equal(quoteCommandArgument('--log-format=json'), '--log-format=json');
    assert.equal(quoteCommandArgument('a b'), "a' 'b");
    assert.equal(quoteCommandArgument(''), "''");
  });
});

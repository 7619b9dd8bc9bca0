/**
 * A team shares one database directory: two real Unix users of one group run every command on
 * it; an outsider reads what the directory lets everyone read, and nothing more.
 */
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { execa } from 'execa';
import { sharingModes } from '../src/sharing.js';
import { makeTempDir, runCli } from './helpers/cli.js';
import { TEST_PYTHON } from './helpers/paths.js';
import { makeSampleProposal } from './helpers/python.js';
import { supervisorctl, supervisordPort } from './helpers/supervisor.js';
import { commandAs, createTeam, type Team } from './helpers/users.js';
import { eventually, values } from './listener/helpers.js';

describe('sharing modes follow the database directory', () => {
  test('a group-writable directory: the group reads and writes, others read what the directory shows them', () => {
    assert.deepEqual(sharingModes({ mode: 0o2775, gid: 7 }), { file: 0o664, dir: 0o2775, private: 0o660, umask: 0o002, gid: 7 });
    assert.deepEqual(sharingModes({ mode: 0o2770, gid: 7 }), { file: 0o660, dir: 0o2770, private: 0o660, umask: 0o007, gid: 7 });
  });

  test("a directory of its owner alone stays its owner's; one open to all (the reference's 0777) stays open", () => {
    assert.deepEqual(sharingModes({ mode: 0o755, gid: 7 }), { file: 0o644, dir: 0o755, private: 0o600, umask: 0o022, gid: 7 });
    assert.deepEqual(sharingModes({ mode: 0o777, gid: 7 }), { file: 0o666, dir: 0o2777, private: 0o666, umask: 0, gid: 7 });
  });
});

function mode(file: string): string {
  return (statSync(file).mode & 0o7777).toString(8).padStart(4, '0');
}

describe('a database shared by a team on one file system', () => {
  const tmp = makeTempDir('damnit-sharing-');
  let team: Team;
  let alice: string;
  let bob: string;
  let eve: string;
  let db: string;
  let teamGid: number;

  // Each variable also writes a file of its own next to the database, as contexts do.
  const context = `import os
from damnit_ctx import Variable

@Variable(title="Value")
def value(run, n: "meta#run_number"):
    os.makedirs("notes", exist_ok=True)
    with open(os.path.join("notes", "r%d.txt" % n), "w") as f:
        f.write("seen by %d" % os.getuid())
    return n * 10
`;

  before(async () => {
    team = await createTeam({ members: 2, outsiders: 1 });
    [alice, bob] = team.members as [string, string];
    [eve] = team.outsiders as [string];
    teamGid = Number((await execa('getent', ['group', team.group])).stdout.split(':')[2]);
    // The proposal: raw data readable by all, usr/Shared the team's (group-writable, setgid,
    // readable by others as a proposal's shared folder often is).
    chmodSync(tmp.dir, 0o755);
    const root = path.join(tmp.dir, 'p001234');
    await makeSampleProposal(root, ['--runs', '2', '--trains', '3']);
    for (const dir of [path.join(root, 'usr'), path.join(root, 'usr', 'Shared')]) {
      mkdirSync(dir, { recursive: true });
      chownSync(dir, 0, teamGid);
      chmodSync(dir, 0o2775);
    }
    writeFileSync(path.join(tmp.dir, 'context.py'), context);
    db = path.join(root, 'usr', 'Shared', 'amore');
  });

  after(async () => {
    // supervisord runs as the member who started it: end it by its pid before the users go.
    const pidFile = path.join(db, 'supervisord.pid');
    try {
      const pid = Number(readFileSync(pidFile, 'utf8').trim());
      process.kill(pid, 'SIGTERM');
      await eventually('supervisord to exit', () => {
        try {
          process.kill(pid, 0);
          return undefined;
        } catch {
          return true;
        }
      });
    } catch {
      // Never started, or already gone.
    }
    await team?.remove();
    tmp.cleanup();
  });

  test('a member sets it up with init: the directory takes the group of its parent, setgid', async () => {
    const res = await runCli(['init', db, '--context', path.join(tmp.dir, 'context.py')], { cwd: tmp.dir, as: alice });
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /^Setting up DAMNIT in .*\/p001234\/usr\/Shared\/amore$/m);
    assert.match(res.stdout, /^Created .*runs\.sqlite for proposal 1234$/m);
    assert.equal(mode(db), '2775');
    assert.equal(statSync(db).gid, teamGid);
    const configured = await runCli(['db-config', 'context_python', TEST_PYTHON], { cwd: db, as: alice });
    assert.equal(configured.code, 0, configured.stderr);
    for (const file of ['runs.sqlite', 'context.py']) {
      assert.equal(mode(path.join(db, file)), '0664', file);
      assert.equal(statSync(path.join(db, file)).gid, teamGid, file);
    }
  });

  test("both members reprocess; each one's files, the context's own included, are the team's", async () => {
    for (const [user, run] of [[alice, '1'], [bob, '2'], [alice, '2']] as const) {
      const res = await runCli(['reprocess', run], { cwd: db, as: user });
      assert.equal(res.code, 0, `${user}: ${res.stderr}`);
    }
    assert.equal(values(db).get('r1.value'), 10);
    assert.equal(values(db).get('r2.value'), 20);
    for (const [file, expected] of [
      ['extracted_data', '2775'],
      ['extracted_data/p1234_r1.h5', '0664'],
      ['extracted_data/p1234_r2.h5', '0664'],
      ['notes', '2775'],
      ['notes/r2.txt', '0664'],
      ['runs.sqlite', '0664'],
    ] as const) {
      assert.equal(mode(path.join(db, file)), expected, file);
      assert.equal(statSync(path.join(db, file)).gid, teamGid, file);
    }
  });

  test("the backend one member starts, the other controls with supervisorctl from the team's hosts", async () => {
    const started = await runCli(['listen', '--daemonize', '--settle', '0.3', '--rescan', '0.2'], { cwd: db, as: alice });
    assert.equal(started.code, 0, started.stderr);
    const conf = path.join(db, 'supervisord.conf');
    assert.equal(mode(conf), '0660');
    assert.equal(statSync(conf).gid, teamGid);
    // Listening on every interface, for the team's other hosts (checked on the socket; the
    // tests themselves only connect over 127.0.0.1).
    const port = supervisordPort(db);
    const sockets = (await execa('ss', ['-ltn'])).stdout;
    assert.match(sockets, new RegExp(`^LISTEN.*\\s(0\\.0\\.0\\.0|\\*|\\[::\\]):${port}\\s`, 'm'));

    const status = await runCli(['backend', 'status'], { cwd: db, as: bob });
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /^damnit: RUNNING/m);
    const before = /pid (\d+)/.exec(status.stdout)?.[1];
    const restarted = await supervisorctl(db, ['restart', 'damnit'], bob);
    assert.equal(restarted.code, 0, restarted.out);
    assert.match(restarted.out, /damnit: stopped\ndamnit: started/);
    const after = await supervisorctl(db, ['status', 'damnit'], bob);
    assert.match(after.out, /^damnit\s+RUNNING\s+pid (\d+)/m);
    assert.notEqual(/pid (\d+)/.exec(after.out)?.[1], before);

    for (const log of ['amore.log', 'supervisord.log']) {
      const read = await execa(...commandAs(bob, ['cat', path.join(db, log)]), { reject: false });
      assert.equal(read.exitCode, 0, `${log}: ${read.stderr}`);
      assert.equal(mode(path.join(db, log)), '0664', log);
    }
    assert.match(readFileSync(path.join(db, 'amore.log'), 'utf8'), /backend started for proposal 1234/);
  });

  test('a supervisord.conf an older version made 0600 is refused with a reason, then shared by its owner', async () => {
    chmodSync(path.join(db, 'supervisord.conf'), 0o600);
    const refused = await runCli(['backend', 'restart'], { cwd: db, as: bob });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^Error: cannot read .*supervisord\.conf \(mode 0600\); it was written by an older version for its owner alone: the next amore-proto command its owner runs here shares it with the team$/m);
    const owner = await runCli(['db-config', 'note', 'shared again'], { cwd: db, as: alice });
    assert.equal(owner.code, 0, owner.stderr);
    assert.equal(mode(path.join(db, 'supervisord.conf')), '0660');
    const status = await runCli(['backend', 'status'], { cwd: db, as: bob });
    assert.equal(status.code, 0, status.stderr);
  });

  test('an outsider reads what the directory shows everyone, through our commands and DAMNIT-style readers, and can change nothing', async () => {
    const read = async (args: string[]) => {
      const res = await runCli(args, { cwd: db, as: eve });
      assert.equal(res.code, 0, `${args.join(' ')}: ${res.stderr}`);
      return res.stdout;
    };
    assert.match(await read(['table']), /^1\s+10$/m);
    assert.equal(await read(['db-config', 'proposal']), '1234\n');
    assert.match(await read(['db-config']), /^proposal=1234$/m);
    assert.equal(await read(['proposal']), 'Current proposal number: 1234\n');
    await read(['check', 'context.py']);
    // The backend's state from the database; its control file is the team's only.
    const status = await read(['backend', 'status']);
    assert.match(status, /^damnit: supervisord\.conf is readable by the team only \(those who may write this directory\)$/m);
    assert.match(status, /; listener pid \d+ on [^,]+, since /m);

    const python = await execa(...commandAs(eve, [TEST_PYTHON, '-c', String.raw`
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
print(conn.execute("SELECT value FROM metameta WHERE key = 'proposal'").fetchone()[0])
print(sorted(r[0] for r in conn.execute("SELECT value FROM run_variables")))
`, path.join(db, 'runs.sqlite')]), { reject: false });
    assert.equal(python.exitCode, 0, python.stderr);
    assert.equal(python.stdout, '1234\n[10, 20]');

    const reprocess = await runCli(['reprocess', '1'], { cwd: db, as: eve });
    assert.equal(reprocess.code, 1);
    assert.match(reprocess.stderr, new RegExp(`^Error: cannot write ${db.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(owner ${alice}, group ${team.group}, mode 2775\\): this command changes the database, which only those who may write its directory can do$`, 'm'));
    assert.equal(reprocess.stderr.split('\n').filter((l) => l !== '').length, 1, reprocess.stderr);
    const control = await supervisorctl(db, ['stop', 'damnit'], eve);
    assert.notEqual(control.code, 0);
    assert.match((await supervisorctl(db, ['status', 'damnit'], alice)).out, /RUNNING/);
  });

  test('a database an earlier version left in WAL: readers are told why they cannot read it, until a member migrates it', async () => {
    const old = path.join(path.dirname(db), 'earlier');
    mkdirSync(old);
    chownSync(old, 0, teamGid);
    chmodSync(old, 0o2775);
    const copy = path.join(old, 'runs.sqlite');
    writeFileSync(copy, readFileSync(path.join(db, 'runs.sqlite')));
    chownSync(copy, Number((await execa('id', ['-u', alice])).stdout), teamGid);
    chmodSync(copy, 0o664);
    const walMode = new Database(copy);
    walMode.pragma('journal_mode = WAL');
    walMode.close();

    const refused = await runCli(['table'], { cwd: old, as: eve });
    assert.equal(refused.code, 1);
    assert.equal(
      refused.stderr,
      `Error: cannot read ${copy}: an earlier version left it in WAL mode, which only those who may write its directory ` +
        `can open; the next command one of them runs that writes it (amore-proto migrate) switches it back\n`,
    );
    const migrated = await runCli(['migrate'], { cwd: old, as: bob });
    assert.equal(migrated.code, 0, migrated.stderr);
    assert.match(migrated.stdout, /^Switched .*runs\.sqlite from WAL to SQLite's rollback journal/m);
    const read = await runCli(['table'], { cwd: old, as: eve });
    assert.equal(read.code, 0, read.stderr);
    assert.match(read.stdout, /^2\s+20$/m);
  });

  test('an outsider of a directory closed to others is told so, in one line', async () => {
    chmodSync(db, 0o2770);
    try {
      for (const args of [['table'], ['reprocess', '1'], ['backend', 'status']]) {
        const res = await runCli(args, { cwd: db, as: eve });
        assert.equal(res.code, 1, args.join(' '));
        assert.equal(res.stderr, `Error: cannot read ${db} (owner ${alice}, group ${team.group}, mode 2770): this database is not shared with you\n`);
      }
    } finally {
      chmodSync(db, 0o2775);
    }
  });

  test('the other member stops the backend', async () => {
    const stopped = await runCli(['backend', 'stop'], { cwd: db, as: bob });
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.match(stopped.stdout, /stopped/);
  });
});

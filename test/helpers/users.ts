/**
 * Real Unix users for the tests of shared databases: a team (a group and its members) and
 * outsiders, created with groupadd/useradd (the tests run as root) and removed afterwards.
 * Names carry this process's pid, so that parallel runs never share them.
 */
import { execa } from 'execa';
import { CLI_PATH } from './paths.js';

export interface Team {
  group: string;
  members: string[];
  outsiders: string[];
  /** Removes the users and the group (their processes must have ended). */
  remove(): Promise<void>;
}

export async function createTeam(opts: { members: number; outsiders: number }): Promise<Team> {
  const tag = `dt${process.pid}`;
  const group = `${tag}team`;
  const members = Array.from({ length: opts.members }, (_, i) => `${tag}m${i + 1}`);
  const outsiders = Array.from({ length: opts.outsiders }, (_, i) => `${tag}o${i + 1}`);
  await execa('groupadd', [group]);
  // No home directories: nothing of theirs outlives the test.
  for (const member of members) await execa('useradd', ['-M', '-g', group, member]);
  for (const outsider of outsiders) await execa('useradd', ['-M', outsider]);
  // The users run this checkout's CLI: a checkout under a directory others cannot enter (mktemp -d
  // makes 0700 ones) fails every test of theirs with MODULE_NOT_FOUND, so say why once.
  const remove = async (): Promise<void> => {
    for (const user of [...members, ...outsiders]) await execa('userdel', [user], { reject: false });
    await execa('groupdel', [group], { reject: false });
  };
  const reader = await execa(...commandAs(members[0] ?? outsiders[0], ['test', '-r', CLI_PATH]), { reject: false });
  if (reader.exitCode !== 0) {
    await remove();
    throw new Error(`other users cannot read ${CLI_PATH}: give every directory above this checkout o+x (e.g. chmod 755)`);
  }
  return { group, members, outsiders, remove };
}

/** A command line as it runs: as this process, or as `user` (with that user's groups). */
export function commandAs(user: string | undefined, command: string[]): [string, string[]] {
  const [file, ...args] = user === undefined ? command : ['runuser', '-u', user, '--', ...command];
  return [file as string, args];
}

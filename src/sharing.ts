/**
 * Who may use a database directory, and the modes of what we create in it (docs/operations.md,
 * "Sharing a database"). The team is whoever may write the database directory: its owner, its
 * group when the directory is group-writable, everyone when it is world-writable. Everything
 * we create there gives each class of user what the directory gives it, and no more:
 *
 *   directory  drwxrws---  ->  files -rw-rw----, directories drwxrws---, supervisord.conf -rw-rw----
 *   directory  drwxrwsr-x  ->  files -rw-rw-r--, directories drwxrwsr-x, supervisord.conf -rw-rw----
 *
 * and takes the directory's group (setgid directories hand it down). The reference makes files
 * 0666 and directories 0777 instead, which lets anyone who can reach the directory write there;
 * following the directory keeps a world-readable database directory read-only for outsiders,
 * and keeps the backend's credentials (supervisord.conf) within the team.
 *
 * A command that writes takes these modes as its umask, so that every process it starts (the
 * Python shim, the context's own code, supervisord, Slurm jobs) creates files the same way.
 */
import { accessSync, chmodSync, chownSync, constants, existsSync, mkdirSync, readFileSync, statSync, type Stats } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CliError } from './cli/errors.js';
import type { DatabaseDir } from './database-dir.js';

export interface SharingModes {
  /** Regular files: read and write for each class as the directory allows it. */
  file: number;
  /** Directories, setgid so that what is created inside keeps the group. */
  dir: number;
  /** Files holding credentials (supervisord.conf): read and write for the team only. */
  private: number;
  /** The umask that makes `open(..., 0o666)` and `mkdir(..., 0o777)` give `file` and `dir`. */
  umask: number;
  /** The directory's group. */
  gid: number;
}

const SETGID = 0o2000;
const STICKY = 0o1000;

/** The modes of what is created in a directory with this stat. */
export function sharingModes(dir: Pick<Stats, 'mode' | 'gid'>): SharingModes {
  const classes = dir.mode & 0o077;
  const groupWrites = (dir.mode & 0o020) !== 0;
  const othersWrite = (dir.mode & 0o002) !== 0;
  return {
    file: 0o600 | (classes & 0o066),
    dir: 0o700 | classes | (groupWrites || (dir.mode & SETGID) !== 0 ? SETGID : 0),
    private: 0o600 | (groupWrites ? 0o060 : 0) | (othersWrite ? 0o006 : 0),
    umask: 0o077 & ~classes,
    gid: dir.gid,
  };
}

/** What kind of thing we create in the database directory, for its mode. */
export type SharedKind = 'file' | 'dir' | 'private';

function isOwnedByUs(stats: Stats): boolean {
  return stats.uid === os.userInfo().uid;
}

/** The bits the team needs on a path of this kind: read and write (and search, for directories). */
function teamBits(kind: SharedKind, modes: SharingModes): number {
  if (kind !== 'dir') return modes.private;
  return modes.private | ((modes.private & 0o444) >> 2) | (modes.dir & SETGID);
}

/**
 * Gives a path we own the group of this directory and the bits the team needs, and takes away
 * what goes beyond the directory's modes (an earlier version's 0666); a mode its owner narrowed
 * further (a context.py made 0640) stays narrow. Others' paths are left alone (only the owner
 * may change them), as are failures: a member of several groups may not be able to hand a file
 * to the directory's group, which costs sharing, not the command.
 */
export function shareOwnedPath(file: string, kind: SharedKind, modes: SharingModes): void {
  let stats: Stats;
  try {
    stats = statSync(file);
  } catch {
    return;
  }
  // Someone else's, or not what we would have made there (a directory called context.py).
  if (!isOwnedByUs(stats) || stats.isDirectory() !== (kind === 'dir')) return;
  try {
    if (stats.gid !== modes.gid) chownSync(file, stats.uid, modes.gid);
  } catch {
    // Not a member of the directory's group: the file keeps ours.
  }
  const wanted = (stats.mode & 0o7777 & modes[kind]) | teamBits(kind, modes);
  try {
    if ((stats.mode & 0o7777) !== wanted) chmodSync(file, wanted);
  } catch {
    // As above: sharing is best effort on paths we own.
  }
}

/** The paths of a database directory we create, and how each is shared. */
function knownPaths(dir: DatabaseDir): [string, SharedKind][] {
  return [
    [dir.databaseFile, 'file'],
    [dir.contextFile, 'file'],
    [dir.logFile, 'file'],
    [dir.supervisordConfig, 'private'],
    [dir.supervisordLog, 'file'],
    [path.join(dir.root, 'supervisord.pid'), 'file'],
    [dir.listenerLockFile, 'file'],
    [dir.extractedDataDir, 'dir'],
    [dir.slurmLogsDir, 'dir'],
    [dir.processLogsDir, 'dir'],
    [path.join(dir.root, 'context_history'), 'dir'],
  ];
}

/**
 * Before a command writes in a database directory: it fails with one line when this user may
 * not write there; this process (and so every process it starts) creates files with the
 * directory's modes; and what we own there from before (an older version made
 * supervisord.conf 0600, extracted_data/ 0755) is shared as it should be.
 */
export function prepareToWrite(dir: DatabaseDir): SharingModes {
  requireWritable(dir);
  const modes = directoryModes(dir.root);
  process.umask(modes.umask);
  // The directory itself gets setgid, when it is ours, so that new files take its group.
  for (const [file, kind] of [[dir.root, 'dir'], ...knownPaths(dir)] as const) shareOwnedPath(file, kind, modes);
  return modes;
}

/** The directory's modes and group without changing anything (the umask included). */
export function directoryModes(root: string): SharingModes {
  return sharingModes(statSync(root));
}

/** Whether this user may access a path this way (constants.R_OK, W_OK, X_OK): the kernel's answer, ACLs included. */
export function mayAccess(file: string, mode: number): boolean {
  try {
    accessSync(file, mode);
    return true;
  } catch {
    return false;
  }
}

/** A name from /etc/passwd or /etc/group (Node has no getpwuid/getgrgid), else the number. */
function nameOf(database: '/etc/passwd' | '/etc/group', id: number): string {
  try {
    for (const line of readFileSync(database, 'utf8').split('\n')) {
      const [name, , number] = line.split(':');
      if (number === String(id) && name) return name;
    }
  } catch {
    // Not readable: the number says it.
  }
  return String(id);
}

/** `owner alice, group team, mode 2770`: who may do what with a path, for error messages. */
export function describeAccess(file: string): string {
  const stats = statSync(file);
  const mode = (stats.mode & 0o7777).toString(8).padStart(4, '0');
  return `owner ${nameOf('/etc/passwd', stats.uid)}, group ${nameOf('/etc/group', stats.gid)}, mode ${mode}`;
}

/**
 * Fails with one line naming the path when this user may not write what every command that
 * writes needs: the directory (SQLite's journal, new files) and runs.sqlite.
 */
function requireWritable(dir: DatabaseDir): void {
  for (const p of [dir.root, dir.databaseFile]) {
    if (existsSync(p) && !mayAccess(p, constants.W_OK)) {
      throw new CliError(
        `cannot write ${p} (${describeAccess(p)}): this command changes the database, which only ` +
          'those who may write its directory can do',
      );
    }
  }
}

/**
 * Creates a database directory (and missing parents) the way its parent is shared: the
 * parent's group and permissions, setgid, and always usable by its owner. Under a sticky
 * directory open to all (/tmp) the user's own umask decides instead: that is nobody's team.
 */
export function createDatabaseDirectory(root: string): void {
  const missing: string[] = [];
  let existing = path.resolve(root);
  while (!existsSync(existing)) {
    missing.unshift(existing);
    existing = path.dirname(existing);
  }
  const parent = statSync(existing);
  const modes = (parent.mode & STICKY) === 0 ? sharingModes(parent) : null;
  for (const dir of missing) {
    mkdirSync(dir);
    if (modes) shareOwnedPath(dir, 'dir', modes);
  }
}

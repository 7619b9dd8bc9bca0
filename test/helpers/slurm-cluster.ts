/**
 * A real single-node Slurm cluster for tests: munged, slurmctld and slurmd from Debian
 * (apt: slurmctld slurmd slurm-client munge), run as root with everything under one directory.
 *
 * One cluster per machine, shared by every test process: test files run in parallel processes,
 * and two slurmd daemons cannot serve the same host name. `startSlurmCluster()` takes a lock
 * file, reuses the cluster if its daemons are up (else starts them fresh) and records a lease
 * for the calling process; `stop()` drops that lease and ends the daemons when no live process
 * holds one. A process that dies without calling `stop()` leaves a lease whose pid is dead,
 * which the next `stop()` ignores. Clients find the cluster through `env` (SLURM_CONF).
 *
 * Layout of the directory (`$TMPDIR/damnit-test-slurm-<uid>`, or DAMNIT_TEST_SLURM_DIR):
 * slurm.conf, state/, spool/, log/{slurmctld,slurmd}.log, run/*.pid, leases/<pid>,
 * munge/{munge.socket,munged.pid} and munge/private/{munge.key,munged.log,munged.seed}.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync, closeSync, openSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { processAlive } from '../../src/processes.js';

export interface SlurmCluster {
  dir: string;
  /** The slurm.conf every client command must read. */
  conf: string;
  /** Environment for Slurm commands: pass it to the code under test. */
  env: Record<string, string>;
  /** The node's name, which is this host's short name. */
  nodeName: string;
  /** `scontrol --oneliner show job <id>` as a field map (each field's first occurrence). */
  showJob(jobId: string): Promise<Record<string, string>>;
  /** A reservation active now, for the current user, on one core of the node (other jobs still run). */
  createReservation(): Promise<string>;
  deleteReservation(name: string): Promise<void>;
  /**
   * A reservation that has ended and that Slurm still lists (as INACTIVE) until it purges it,
   * about 30 s later; after that the name is simply unknown, like one never created.
   */
  expiredReservation(): Promise<string>;
  /** Drops this process's lease; the last one out ends the daemons. */
  stop(): Promise<void>;
}

const clusterDir = process.env.DAMNIT_TEST_SLURM_DIR ?? path.join(os.tmpdir(), `damnit-test-slurm-${process.getuid?.() ?? 0}`);
const LOCK_FILE = `${clusterDir}.lock`;
const CONF = path.join(clusterDir, 'slurm.conf');
const MUNGE_DIR = path.join(clusterDir, 'munge');
const MUNGE_PRIVATE = path.join(MUNGE_DIR, 'private');
const MUNGE_SOCKET = path.join(MUNGE_DIR, 'munge.socket');
const LEASES_DIR = path.join(clusterDir, 'leases');

/** Each daemon with its pid file and the name the kernel gives its process. */
const DAEMONS = [
  { name: 'slurmd', pidFile: path.join(clusterDir, 'run', 'slurmd.pid') },
  { name: 'slurmctld', pidFile: path.join(clusterDir, 'run', 'slurmctld.pid') },
  { name: 'munged', pidFile: path.join(MUNGE_DIR, 'munged.pid') },
] as const;

const clientEnv = (): Record<string, string> => ({ SLURM_CONF: CONF });

/** slurmd names its node after the host's short name. */
const nodeName = os.hostname().split('.')[0] ?? 'localhost';

/** The pid in a daemon's pid file, if that process is alive and really is the daemon. */
function daemonPid(daemon: (typeof DAEMONS)[number]): number | null {
  let pid: number;
  try {
    pid = Number(readFileSync(daemon.pidFile, 'utf8').trim());
  } catch {
    return null;
  }
  if (!Number.isInteger(pid) || pid <= 0 || !processAlive(pid)) return null;
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === daemon.name ? pid : null;
  } catch {
    return null;
  }
}

async function withLock<T>(work: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 180_000;
  for (;;) {
    try {
      const fd = openSync(LOCK_FILE, 'wx');
      writeFileSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = Number(readFileSync(LOCK_FILE, 'utf8').trim() || NaN);
      // A lock whose holder died (or was never written) is stale.
      if (!(holder > 0 && processAlive(holder))) {
        rmSync(LOCK_FILE, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for the Slurm test lock ${LOCK_FILE} (held by pid ${holder})`);
      await sleep(100);
    }
  }
  try {
    return await work();
  } finally {
    rmSync(LOCK_FILE, { force: true });
  }
}

async function run(command: string, args: string[], opts: { uid?: number; gid?: number } = {}): Promise<string> {
  const result = await execa(command, args, { env: clientEnv(), reject: false, stdin: 'ignore', ...opts });
  if (result.exitCode !== 0) {
    throw new Error(`${command} ${args.join(' ')} failed (${result.exitCode ?? result.shortMessage}): ${result.stderr || result.stdout}`);
  }
  return result.stdout;
}

async function nodeState(): Promise<string> {
  const result = await execa('sinfo', ['--noheader', `--nodes=${nodeName}`, '--format=%T'], {
    env: clientEnv(),
    reject: false,
    stdin: 'ignore',
  });
  // sinfo prints one line per partition; a state may carry a flag suffix (idle*, mixed~, ...).
  return result.exitCode === 0 ? (result.stdout.split('\n')[0] ?? '').replace(/[*~#!%$@^-]+$/, '') : '';
}

/** States in which the node takes jobs; with jobs of other test processes it is not idle. */
const USABLE_STATES = ['idle', 'mixed', 'allocated', 'completing'];

/** Waits up to `timeoutMs` for the node to reach one of `states`; returns the last state seen. */
async function waitForNode(states: string[], timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let state = await nodeState();
  while (!states.includes(state) && Date.now() < deadline) {
    await sleep(200);
    state = await nodeState();
  }
  return state;
}

/**
 * Jobs still running when slurmd stops would outlive it (their slurmstepd carries on), so the
 * last user cancels everything on this private cluster first and waits for the queue to empty.
 */
async function cancelAllJobs(): Promise<void> {
  await execa('scancel', [`--user=${os.userInfo().username}`], { env: clientEnv(), reject: false, stdin: 'ignore' });
  const deadline = Date.now() + 15_000;
  for (;;) {
    const queue = await execa('squeue', ['--noheader'], { env: clientEnv(), reject: false, stdin: 'ignore' });
    if (queue.exitCode !== 0 || queue.stdout.trim() === '' || Date.now() > deadline) return;
    await sleep(200);
  }
}

/** Each daemon takes about 2 s to shut down: signal them all, then wait. */
async function stopDaemons(): Promise<void> {
  const pids = DAEMONS.map(daemonPid).filter((pid): pid is number => pid !== null);
  for (const pid of pids) process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 15_000;
  while (pids.some(processAlive) && Date.now() < deadline) await sleep(100);
  for (const pid of pids.filter(processAlive)) process.kill(pid, 'SIGKILL');
}

function logTail(file: string): string {
  try {
    return `\n--- ${file}:\n${readFileSync(file, 'utf8').split('\n').slice(-15).join('\n')}`;
  } catch {
    return '';
  }
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function userIds(name: string): Promise<{ uid: number; gid: number }> {
  const uid = Number((await run('id', ['-u', name])).trim());
  const gid = Number((await run('id', ['-g', name])).trim());
  return { uid, gid };
}

/** munged refuses keys, sockets and logs in directories other users could tamper with. */
async function startMunge(): Promise<void> {
  const munge = await userIds('munge');
  mkdirSync(MUNGE_PRIVATE, { recursive: true });
  chownSync(MUNGE_DIR, munge.uid, munge.gid);
  chmodSync(MUNGE_DIR, 0o755);
  chownSync(MUNGE_PRIVATE, munge.uid, munge.gid);
  chmodSync(MUNGE_PRIVATE, 0o700);
  const key = path.join(MUNGE_PRIVATE, 'munge.key');
  if (!existsSync(key)) writeFileSync(key, randomBytes(1024));
  chownSync(key, munge.uid, munge.gid);
  chmodSync(key, 0o400);
  // munged forks and its first process exits once the daemon is ready to serve the socket.
  await run(
    'munged',
    [
      `--socket=${MUNGE_SOCKET}`,
      `--key-file=${key}`,
      `--pid-file=${path.join(MUNGE_DIR, 'munged.pid')}`,
      `--log-file=${path.join(MUNGE_PRIVATE, 'munged.log')}`,
      `--seed-file=${path.join(MUNGE_PRIVATE, 'munged.seed')}`,
      '--force',
    ],
    munge,
  );
}

function slurmConf(ports: { ctld: number; slurmd: number }): string {
  const dir = (name: string) => path.join(clusterDir, name);
  // config_overrides: the node offers 8 CPUs whatever the machine has, so concurrency limits
  // (not the core count) decide how many array tasks run at once.
  return `# Written by test/helpers/slurm-cluster.ts
ClusterName=damnittest
SlurmctldHost=${nodeName}(127.0.0.1)
SlurmctldPort=${ports.ctld}
SlurmdPort=${ports.slurmd}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=${MUNGE_SOCKET}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MinJobAge=3600
StateSaveLocation=${dir('state')}
SlurmdSpoolDir=${dir('spool')}
SlurmctldPidFile=${dir('run/slurmctld.pid')}
SlurmdPidFile=${dir('run/slurmd.pid')}
SlurmctldLogFile=${dir('log/slurmctld.log')}
SlurmdLogFile=${dir('log/slurmd.log')}
NodeName=${nodeName} NodeAddr=127.0.0.1 CPUs=8 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
PartitionName=other Nodes=ALL MaxTime=INFINITE State=UP
`;
}

async function startFresh(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the Slurm test cluster must be started as root');
  for (const program of ['munged', 'slurmctld', 'slurmd', 'sbatch']) {
    const found = await execa('which', [program], { reject: false });
    if (found.exitCode !== 0) {
      throw new Error(`'${program}' is not installed: apt-get install --no-install-recommends slurmctld slurmd slurm-client munge`);
    }
  }
  await stopDaemons();
  for (const name of ['state', 'spool', 'log', 'run']) {
    rmSync(path.join(clusterDir, name), { recursive: true, force: true });
    mkdirSync(path.join(clusterDir, name), { recursive: true });
  }
  chmodSync(clusterDir, 0o755);
  for (const file of ['munge.socket', 'munge.socket.lock', 'munged.pid']) rmSync(path.join(MUNGE_DIR, file), { force: true });
  await startMunge();
  const ctld = await freePort();
  let slurmd = await freePort();
  while (slurmd === ctld) slurmd = await freePort();
  writeFileSync(CONF, slurmConf({ ctld, slurmd }));
  await run('slurmctld', ['-f', CONF]);
  await run('slurmd', ['-f', CONF]);
  const state = await waitForNode(['idle'], 60_000);
  if (state !== 'idle') {
    const logs = ['slurmctld.log', 'slurmd.log'].map((f) => logTail(path.join(clusterDir, 'log', f))).join('');
    throw new Error(`the Slurm test node did not become idle (state '${state}')${logs}`);
  }
}

function liveLeases(): string[] {
  if (!existsSync(LEASES_DIR)) return [];
  return readdirSync(LEASES_DIR).filter((entry) => {
    const alive = processAlive(Number(entry));
    if (!alive) rmSync(path.join(LEASES_DIR, entry), { force: true });
    return alive;
  });
}

async function scontrol(args: string[]): Promise<string> {
  return run('scontrol', args);
}

function parseFields(record: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const match of record.matchAll(/(?:^|\s)([A-Za-z/:]+)=(\S*)/g)) {
    const [, key, value] = match;
    if (key && !(key in fields)) fields[key] = value ?? '';
  }
  return fields;
}

export async function startSlurmCluster(): Promise<SlurmCluster> {
  mkdirSync(clusterDir, { recursive: true });
  await withLock(async () => {
    mkdirSync(LEASES_DIR, { recursive: true });
    writeFileSync(path.join(LEASES_DIR, String(process.pid)), '');
    if (DAEMONS.every((d) => daemonPid(d) !== null)) {
      // Up already: a slow answer must not make us restart daemons other processes are using.
      const state = await waitForNode(USABLE_STATES, 30_000);
      if (USABLE_STATES.includes(state)) return;
      if (liveLeases().length > 1) {
        throw new Error(`the shared Slurm test cluster in ${clusterDir} is up but its node is '${state}', and other test processes use it`);
      }
    }
    await startFresh();
  });
  const user = os.userInfo().username;
  /** One core of the node, for this user: jobs outside the reservation still run on the rest. */
  const reserve = async (timing: string[]): Promise<string> => {
    const name = `damnit_test_${randomBytes(4).toString('hex')}`;
    const where = [`Users=${user}`, `Nodes=${nodeName}`, 'CoreCnt=1'];
    await scontrol(['create', 'reservation', `ReservationName=${name}`, ...timing, ...where]);
    return name;
  };
  return {
    dir: clusterDir,
    conf: CONF,
    env: clientEnv(),
    nodeName,
    showJob: async (jobId) => parseFields(await scontrol(['--oneliner', 'show', 'job', jobId])),
    createReservation: () => reserve(['StartTime=now', 'Duration=30']),
    deleteReservation: async (name) => {
      await scontrol(['delete', `ReservationName=${name}`]);
    },
    expiredReservation: async () => {
      // Slurm's shortest reservation: one second from now.
      const name = await reserve(['StartTime=now', 'EndTime=now+1']);
      while (!/State=INACTIVE/.test(await scontrol(['show', 'reservation', name]))) await sleep(250);
      return name;
    },
    stop: async () => {
      await withLock(async () => {
        rmSync(path.join(LEASES_DIR, String(process.pid)), { force: true });
        if (liveLeases().length === 0) {
          await cancelAllJobs();
          await stopDaemons();
        }
      });
    },
  };
}

// The pieces of the cluster path that need no Slurm: channel files, array indices, log files,
// how a job's end is worded, and how a run's two parts make one outcome.
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import type { VariableResultMessage } from '../../src/context/protocol.js';
import { DatabaseDir } from '../../src/database-dir.js';
import {
  arrayIndices,
  arrayTaskLogFile,
  jobEndReason,
  readChannelFile,
} from '../../src/executors/slurm-run.js';
import { withClusterPart } from '../../src/runs/cluster.js';
import { outcomeFromMessages } from '../../src/runs/run-request.js';
import { makeTempDir } from '../helpers/cli.js';

const tmp = makeTempDir('damnit-cluster-parts-');
after(() => tmp.cleanup());

const HELLO = '{"protocol": 1, "kind": "hello", "python_version": "3.11.2", "executable": "/usr/bin/python3", "shim_version": "0.1.0"}';
const RESULT = (name: string, v: number) =>
  JSON.stringify({ protocol: 1, kind: 'variable_result', name, value: { t: 'int', v: String(v) }, summary_type: null, summary_method: '', max_diff: null, attributes: null, duration_s: 0.1 });
const FINISHED = '{"protocol": 1, "kind": "run_finished", "proposal": 1234, "run": 1, "start_time": 5.5, "h5_path": "/x.h5", "cluster_left_out": []}';

function result(name: string, v: number): VariableResultMessage {
  return JSON.parse(RESULT(name, v)) as VariableResultMessage;
}

describe('channel files', () => {
  test('read as they grow: a line still being written waits; the final message makes the outcome', () => {
    const file = path.join(tmp.dir, 'growing.jsonl');
    assert.deepEqual(readChannelFile(file), { messages: [], error: null }, 'not created yet');
    writeFileSync(file, `${HELLO}\n${RESULT('a', 1)}\n${FINISHED.slice(0, 30)}`);
    const partial = readChannelFile(file);
    assert.equal(partial.messages.length, 2);
    assert.equal(outcomeFromMessages(partial.messages), null);
    appendFileSync(file, `${FINISHED.slice(30)}\n`);
    assert.deepEqual(outcomeFromMessages(readChannelFile(file).messages), {
      ok: true,
      startTime: 5.5,
      variables: [result('a', 1)],
      h5Path: '/x.h5',
      clusterLeftOut: [],
    });
  });

  test('a fatal message is a failed outcome; a line that is not the protocol is an error', () => {
    const fatal = '{"protocol": 1, "kind": "fatal", "message": "Run 3 cannot be opened", "traceback": "Traceback..."}';
    assert.deepEqual(outcomeFromMessages(readChannelFile(write('fatal.jsonl', `${HELLO}\n${fatal}\n`)).messages), {
      ok: false,
      reason: 'Run 3 cannot be opened',
      detail: 'Traceback...',
    });
    const broken = readChannelFile(write('broken.jsonl', `${HELLO}\nnot json\n`));
    assert.equal(broken.messages.length, 1);
    assert.match(broken.error ?? '', /^Python shim protocol error: shim sent a line that is not JSON: not json$/);
  });

  function write(name: string, text: string): string {
    const file = path.join(tmp.dir, name);
    writeFileSync(file, text);
    return file;
  }
});

test('array indices: runs as ranges where consecutive', () => {
  assert.equal(arrayIndices([1, 2, 3]), '1-3');
  assert.equal(arrayIndices([7, 3, 4, 5, 12, 10, 11, 20]), '3-5,7,10-12,20');
  assert.equal(arrayIndices([42]), '42');
  assert.equal(arrayIndices([5, 5, 6]), '5-6');
});

test("an array task's log: the lowest job id from the array's up, for that run", () => {
  const dir = new DatabaseDir(path.join(tmp.dir, 'logs-db'));
  mkdirSync(dir.slurmLogsDir, { recursive: true });
  for (const name of ['r3-p1234-90.out', 'r3-p1234-104.out', 'r3-p1234-101.out', 'r13-p1234-100.out', 'r3-p999-100.out']) {
    writeFileSync(path.join(dir.slurmLogsDir, name), '');
  }
  assert.equal(arrayTaskLogFile(dir, 3, 1234, '100'), path.join(dir.slurmLogsDir, 'r3-p1234-101.out'));
  assert.equal(arrayTaskLogFile(dir, 13, 1234, '100'), path.join(dir.slurmLogsDir, 'r13-p1234-100.out'));
  assert.equal(arrayTaskLogFile(dir, 4, 1234, '100'), null);
});

describe("a job's end in words", () => {
  const dir = new DatabaseDir(path.join(tmp.dir, 'reason-db'));
  mkdirSync(dir.slurmLogsDir, { recursive: true });
  const log = path.join(dir.slurmLogsDir, 'r1-p1234-7.out');
  writeFileSync(log, 'output\n');
  const settings = { partition: null, reservation: null, time: '00:30:00' };
  const end = (state: Parameters<typeof jobEndReason>[0]['state'], exitCode: number | null = null, signal: number | null = null) =>
    jobEndReason({ jobId: '7', state, exitCode, signal }, log, dir, settings);

  test('each final state, with the log file relative to the database directory', () => {
    assert.equal(end('FAILED', 3), 'Slurm job 7 FAILED with exit code 3; its output is in slurm_logs/r1-p1234-7.out');
    assert.equal(end('TIMEOUT'), 'Slurm job 7 reached its time limit and was stopped (TIMEOUT; slurm_time is 00:30:00); its output is in slurm_logs/r1-p1234-7.out');
    assert.equal(end('CANCELLED', 0, 15), 'Slurm job 7 was CANCELLED; its output is in slurm_logs/r1-p1234-7.out');
    assert.equal(end('OUT_OF_MEMORY', 0, 9), 'Slurm job 7 ended as OUT_OF_MEMORY (signal 9); its output is in slurm_logs/r1-p1234-7.out');
    assert.equal(end('UNKNOWN'), 'Slurm job 7 ended, but Slurm no longer knows how; its output is in slurm_logs/r1-p1234-7.out');
  });

  test('a job that never started has no output', () => {
    const reason = jobEndReason({ jobId: '8', state: 'CANCELLED', exitCode: null, signal: null }, null, dir, settings);
    assert.equal(reason, 'Slurm job 8 was CANCELLED; it wrote no output');
  });
});

describe("a run's local and cluster parts as one outcome", () => {
  const local = {
    ok: true as const,
    startTime: 5.5,
    variables: [result('base', 1), result('other', 2)],
    h5Path: '/x.h5',
    clusterLeftOut: ['heavy', 'top'],
  };

  test('both went well: every variable once, the cluster job recomputing a dependency last', () => {
    const merged = withClusterPart(local, {
      ok: true,
      where: 'slurm',
      variables: [result('base', 1), result('heavy', 8), result('top', 9)],
      startTime: 5.5,
      jobId: '17',
      logPath: '/db/slurm_logs/r1-p1234-17.out',
    });
    assert.equal(merged.ok, true);
    assert.deepEqual(merged.ok && merged.variables.map((v) => v.name), ['other', 'base', 'heavy', 'top']);
    assert.equal(merged.cluster?.ok && merged.cluster.jobId, '17');
  });

  test('a failed cluster part fails the run, saying what was recorded and what was not', () => {
    const merged = withClusterPart(
      { ...local, clusterLeftOut: ['a', 'b', 'c', 'd', 'e', 'f', 'g'] },
      { ok: false, reason: 'Slurm job 17 FAILED with exit code 1; its output is in slurm_logs/r1-p1234-17.out', jobId: '17', state: 'FAILED', logPath: null },
    );
    assert.deepEqual(
      merged.ok ? null : merged.reason,
      '2 variables recorded, but the cluster variables a, b, c, d, e and 2 more were not computed: ' +
        'Slurm job 17 FAILED with exit code 1; its output is in slurm_logs/r1-p1234-17.out',
    );
    assert.equal(merged.cluster?.ok === false && merged.cluster.state, 'FAILED');
  });
});

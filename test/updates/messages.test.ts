import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import {
  processingFinishedMessage,
  processingStateMessage,
  runValuesUpdatedMessage,
  UpdateMessage,
  updateTopic,
  variableSetMessage,
} from '../../src/updates/messages.js';
import { FIXTURES_DIR } from '../helpers/paths.js';

/** A fixture written from the reference's code (fixtures/gui-messages/README.md). */
export function referenceMessage(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(path.join(FIXTURES_DIR, 'gui-messages', `${name}.json`), 'utf8')) as Record<string, unknown>;
}

/** A message's shape: its field names in order, and the JSON type of each value (nested objects by shape). */
export function shape(value: unknown): unknown {
  if (value === null) return 'null';
  if (Array.isArray(value)) return value.length === 0 ? 'array' : ['array of', shape(value[0])];
  if (typeof value === 'object') return Object.entries(value as object).map(([k, v]) => [k, shape(v)]);
  return typeof value;
}

describe('update messages', () => {
  test("the GUI's topic for a database", () => {
    assert.equal(updateTopic('0123abc'), 'test.damnit.db-0123abc');
  });

  test('variable_set has the fields of the reference, tags null when none', () => {
    const tagged = variableSetMessage({ name: 'xgm_intensity', title: 'XGM intensity', description: 'Mean pulse energy', tags: ['xgm', 'beam'] });
    assert.deepEqual(tagged, referenceMessage('variable_set'));
    const untagged = variableSetMessage({ name: 'n_trains', title: 'n_trains', description: null, tags: [] });
    assert.deepEqual(untagged, referenceMessage('variable_set-untagged'));
    assert.deepEqual(Object.keys((untagged as { data: object }).data), ['name', 'title', 'description', 'tags', 'attributes', 'type']);
  });

  test('run_values_updated names the recorded values (null), values then errors', () => {
    const message = runValuesUpdatedMessage(1234, 12, { values: ['xgm_intensity', 'start_time', 'n_trains'], errors: [] });
    assert.deepEqual(shape(message), shape(referenceMessage('run_values_updated')));
    assert.deepEqual(message, referenceMessage('run_values_updated'));
    const withErrors = runValuesUpdatedMessage(1, 2, { values: ['b', 'a'], errors: ['z', 'c'] });
    assert.deepEqual(Object.keys((withErrors.data as { values: object }).values), ['a', 'b', 'c', 'z']);
  });

  test('processing_state_set: running here, and pending in Slurm, as the reference sends them', () => {
    const running = processingStateMessage({
      processing_id: 'p-1', proposal: 1234, run: 12, data: 'raw', status: 'RUNNING', hostname: 'h', username: 'u', slurm_cluster: null, slurm_job_id: '',
    });
    assert.deepEqual(shape(running), shape(referenceMessage('processing_state_set-running')));
    const pending = processingStateMessage({
      processing_id: 'p-2', proposal: 1234, run: 12, data: 'all', status: 'PENDING', hostname: '', username: '', slurm_cluster: 'maxwell', slurm_job_id: '12380337_308',
    });
    assert.deepEqual(shape(pending), shape(referenceMessage('processing_state_set-pending')));
  });

  test('processing_finished carries the processing id only', () => {
    assert.deepEqual(shape(processingFinishedMessage('x')), shape(referenceMessage('processing_finished')));
  });

  test('every fixture passes our schema, and a message with a field too many or missing does not', () => {
    for (const name of ['variable_set', 'variable_set-untagged', 'run_values_updated', 'processing_state_set-running', 'processing_state_set-pending', 'processing_finished']) {
      assert.ok(UpdateMessage.safeParse(referenceMessage(name)).success, name);
    }
    const extra = { msg_kind: 'processing_finished', data: { processing_id: 'x', extra: 1 } };
    assert.equal(UpdateMessage.safeParse(extra).success, false);
    assert.equal(UpdateMessage.safeParse({ msg_kind: 'variable_set', data: { name: 'x' } }).success, false);
  });
});

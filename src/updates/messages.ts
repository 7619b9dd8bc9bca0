/**
 * The update messages DAMNIT's GUI listens for (docs/operations.md, "The GUI link"): JSON
 * objects `{"msg_kind": KIND, "data": {...}}` on the topic `test.damnit.db-<db_id>`, with the
 * kinds and fields the reference backend sends (its backend/db.py MsgKind and msg_dict, and
 * what extract_data.py, extraction_control.py and combine.py put in them). Field names, types
 * and order are the GUI's contract; the schemas below are checked on every message we send.
 */
import { z } from 'zod';

/** The GUI's topic for a database: the reference's UPDATE_TOPIC with the database's db_id. */
export function updateTopic(dbId: string): string {
  return `test.damnit.db-${dbId}`;
}

export const MSG_KINDS = ['variable_set', 'run_values_updated', 'processing_state_set', 'processing_finished'] as const;
export type MsgKind = (typeof MSG_KINDS)[number];

/** A computed variable's metadata, as the reference's vars_to_dict gives it (`type` null: not user-editable). */
export const VariableSetData = z.strictObject({
  name: z.string(),
  title: z.string(),
  description: z.string().nullable(),
  tags: z.array(z.string()).nullable(),
  attributes: z.null(),
  type: z.null(),
});

/** New values for a run: the names only (values null), for the GUI to read back from the database. */
export const RunValuesUpdatedData = z.strictObject({
  run: z.number().int(),
  proposal: z.number().int(),
  values: z.record(z.string(), z.null()),
});

export const PROCESSING_STATUSES = ['PENDING', 'RUNNING'] as const;
export type ProcessingStatus = (typeof PROCESSING_STATUSES)[number];

/** A processing queued or running; the GUI marks its run (⋮ queued, ⚙️ running) until it finishes. */
export const ProcessingStateData = z.strictObject({
  processing_id: z.string().min(1),
  proposal: z.number().int(),
  run: z.number().int(),
  /** Which data the processing is for. */
  data: z.enum(['raw', 'proc', 'all']),
  status: z.enum(PROCESSING_STATUSES),
  /** Where and as whom it runs: empty while queued. */
  hostname: z.string(),
  username: z.string(),
  /** Null for a processing outside Slurm. */
  slurm_cluster: z.string().nullable(),
  /** '' for a processing outside Slurm; `<array job>_<task>` for an array task. */
  slurm_job_id: z.string(),
});
export type ProcessingState = z.infer<typeof ProcessingStateData>;

export const ProcessingFinishedData = z.strictObject({ processing_id: z.string().min(1) });

export const UpdateMessage = z.discriminatedUnion('msg_kind', [
  z.strictObject({ msg_kind: z.literal('variable_set'), data: VariableSetData }),
  z.strictObject({ msg_kind: z.literal('run_values_updated'), data: RunValuesUpdatedData }),
  z.strictObject({ msg_kind: z.literal('processing_state_set'), data: ProcessingStateData }),
  z.strictObject({ msg_kind: z.literal('processing_finished'), data: ProcessingFinishedData }),
]);
export type UpdateMessage = z.infer<typeof UpdateMessage>;

/** What variable_set says of a variable: the fields of our context description it needs. */
export interface VariableMetadata {
  name: string;
  title: string;
  description: string | null;
  tags: readonly string[];
}

export function variableSetMessage(v: VariableMetadata): UpdateMessage {
  return UpdateMessage.parse({
    msg_kind: 'variable_set',
    data: {
      name: v.name,
      title: v.title,
      description: v.description,
      // The reference sends the tags as the context gave them: null when it gave none.
      tags: v.tags.length > 0 ? [...v.tags] : null,
      attributes: null,
      type: null,
    },
  });
}

/**
 * run_values_updated for names just recorded. The reference lists its run file's `.reduced`
 * then `.errors` datasets, each in name order (h5py's); `start_time` is among the first.
 */
export function runValuesUpdatedMessage(proposal: number, run: number, names: { values: string[]; errors: string[] }): UpdateMessage {
  const values: Record<string, null> = {};
  for (const name of [...[...names.values].sort(), ...[...names.errors].sort()]) values[name] = null;
  return UpdateMessage.parse({ msg_kind: 'run_values_updated', data: { run, proposal, values } });
}

export function processingStateMessage(state: ProcessingState): UpdateMessage {
  return UpdateMessage.parse({ msg_kind: 'processing_state_set', data: state });
}

export function processingFinishedMessage(processingId: string): UpdateMessage {
  return UpdateMessage.parse({ msg_kind: 'processing_finished', data: { processing_id: processingId } });
}

/**
 * The messages the Python shim sends to the orchestrator (docs/protocol.md).
 *
 * One JSON object per line on a dedicated channel (file descriptor 3, or a file for Slurm
 * jobs), never on the user's stdout or stderr. Every line is validated here; a line that does
 * not match is a ProtocolError, never a crash.
 */
import { z } from 'zod';

export const PROTOCOL_VERSION = 1;

const base = { protocol: z.literal(PROTOCOL_VERSION) };

/** First message of every shim process. */
export const HelloMessage = z.object({
  ...base,
  kind: z.literal('hello'),
  python_version: z.string(),
  executable: z.string(),
  shim_version: z.string(),
});

export const ParameterInfo = z.object({
  name: z.string(),
  annotation: z.string().nullable(),
  has_default: z.boolean(),
});

export const VariableInfo = z.object({
  name: z.string(),
  title: z.string(),
  description: z.string().nullable(),
  summary: z.string().nullable(),
  /** After promotion: a variable depending on a proc one is proc. */
  data: z.enum(['raw', 'proc']),
  /** After promotion: a variable depending on a cluster one is cluster. */
  cluster: z.boolean(),
  tags: z.array(z.string()),
  transient: z.boolean(),
  units: z.string().nullable(),
  parameters: z.array(ParameterInfo),
  /** Names of the variables this one depends on directly (globs expanded). */
  dependencies: z.array(z.string()),
  line: z.number().int().nullable(),
});
export type VariableInfo = z.infer<typeof VariableInfo>;

export const ContextMessage = z.object({
  ...base,
  kind: z.literal('context'),
  file: z.string(),
  /** In execution order: the reference's, in waves of variables whose dependencies have run. */
  variables: z.array(VariableInfo),
  /**
   * Problems that at run time fail or skip only their variable (ctx_rules scope "static"): an
   * unknown annotation, a param# without default, a summary that is no reduction. Warnings.
   */
  static_problems: z.array(z.lazy(() => LoadProblem)),
});
export type ContextMessage = z.infer<typeof ContextMessage>;

export const LoadProblem = z.object({
  /** syntax | encoding | import | exception | context | timeout | missing */
  kind: z.string(),
  message: z.string(),
  file: z.string().nullable(),
  line: z.number().int().nullable(),
  column: z.number().int().nullable(),
  variable: z.string().nullable().optional(),
});
export type LoadProblem = z.infer<typeof LoadProblem>;

export const LoadErrorMessage = z.object({
  ...base,
  kind: z.literal('load_error'),
  problems: z.array(LoadProblem).min(1),
  traceback: z.string().nullable(),
});
export type LoadErrorMessage = z.infer<typeof LoadErrorMessage>;

/** A summary value as it crosses to TypeScript; bytes are base64 (PNG, .npy, complex). */
export const SummaryValue = z.discriminatedUnion('t', [
  z.object({ t: z.literal('int'), v: z.string().regex(/^-?\d+$/) }),
  z.object({ t: z.literal('float'), v: z.union([z.number(), z.enum(['nan', 'inf', '-inf'])]) }),
  z.object({ t: z.literal('str'), v: z.string() }),
  z.object({ t: z.literal('bytes'), v: z.string() }),
]);
export type SummaryValue = z.infer<typeof SummaryValue>;

export const VariableResultMessage = z.object({
  ...base,
  kind: z.literal('variable_result'),
  name: z.string(),
  /** null when the variable failed or was skipped. */
  value: SummaryValue.nullable(),
  summary_type: z.string().nullable(),
  summary_method: z.string().nullable(),
  max_diff: z.number().nullable(),
  /** Display hints (units, bold, background) or, for a failure, {error, error_cls}. */
  attributes: z.record(z.string(), z.unknown()).nullable(),
  duration_s: z.number().nullable(),
});
export type VariableResultMessage = z.infer<typeof VariableResultMessage>;

export const RunStartedMessage = z.object({
  ...base,
  kind: z.literal('run_started'),
  proposal: z.number().int(),
  run: z.number().int(),
  run_data: z.enum(['raw', 'proc', 'all']),
  variables: z.array(z.string()),
});

/** A stored variable of the run is about to be computed (the one a stopped run was in). */
export const VariableStartedMessage = z.object({
  ...base,
  kind: z.literal('variable_started'),
  name: z.string(),
});

/** `salvage` applied what a stopped run had staged to the run's HDF5 file. */
export const SalvagedMessage = z.object({
  ...base,
  kind: z.literal('salvaged'),
  /** How many staging files of stopped writers were applied. */
  adopted: z.number().int(),
  /** Variables reported as computed whose values did not survive: now errors in the file. */
  lost: z.array(z.string()),
});

export const RunFinishedMessage = z.object({
  ...base,
  kind: z.literal('run_finished'),
  proposal: z.number().int(),
  run: z.number().int(),
  start_time: z.number().nullable(),
  h5_path: z.string(),
  /** With `--cluster exclude`: the cluster variables left for a Slurm job (`--cluster only`). */
  cluster_left_out: z.array(z.string()).optional(),
});

/** The shim could not do its job at all (run not openable, internal error). */
export const FatalMessage = z.object({
  ...base,
  kind: z.literal('fatal'),
  message: z.string(),
  traceback: z.string().nullable(),
});

/** The warm worker (`worker`) has imported what it preloads and reads requests. */
export const WorkerReadyMessage = z.object({
  ...base,
  kind: z.literal('worker_ready'),
  pid: z.number().int(),
  /** Modules imported once, for every run. */
  preloaded: z.array(z.string()),
  /** Modules of the preload list this interpreter does not have. */
  unavailable: z.array(z.string()),
  seconds: z.number(),
});

/** The worker forked the child that runs request `id`; `pid` also names its process group. */
export const ChildStartedMessage = z.object({
  ...base,
  kind: z.literal('child_started'),
  id: z.number().int(),
  pid: z.number().int(),
});

/** The child of request `id` has ended (reaped by the worker). */
export const ChildExitedMessage = z.object({
  ...base,
  kind: z.literal('child_exited'),
  id: z.number().int(),
  pid: z.number().int(),
  code: z.number().int().nullable(),
  signal: z.string().nullable(),
});

/** The worker could not act on a request line (not JSON, invalid fields, fork failed). */
export const RequestRefusedMessage = z.object({
  ...base,
  kind: z.literal('request_refused'),
  id: z.number().int().nullable(),
  message: z.string(),
});

export const ShimMessage = z.discriminatedUnion('kind', [
  HelloMessage,
  ContextMessage,
  LoadErrorMessage,
  RunStartedMessage,
  VariableStartedMessage,
  VariableResultMessage,
  SalvagedMessage,
  RunFinishedMessage,
  FatalMessage,
  WorkerReadyMessage,
  ChildStartedMessage,
  ChildExitedMessage,
  RequestRefusedMessage,
]);
export type ShimMessage = z.infer<typeof ShimMessage>;

/**
 * A request to the warm worker, one JSON line on its stdin: fork a child that runs the shim's
 * `run` command with `argv` in `cwd`. The child connects back to the orchestrator's socket
 * and introduces each connection with `token`.
 */
export const WorkerRunRequest = z.object({
  ...base,
  kind: z.literal('run'),
  id: z.number().int().nonnegative(),
  token: z.string().regex(/^[0-9a-f]{32}$/),
  cwd: z.string().min(1),
  argv: z.array(z.string()),
});
export type WorkerRunRequest = z.infer<typeof WorkerRunRequest>;

/** A request to the warm worker: send `signal` to the group of request `id`'s child (a cancel). */
export const WorkerStopRequest = z.object({
  ...base,
  kind: z.literal('stop'),
  id: z.number().int().nonnegative(),
  signal: z.enum(['SIGTERM', 'SIGKILL']),
});

/**
 * First line of each connection a worker's child opens to the orchestrator's socket: which
 * request it belongs to, and what the rest of the connection carries (protocol messages, or
 * the user's stdout or stderr).
 */
export const ChildAttach = z.object({
  ...base,
  kind: z.literal('attach'),
  token: z.string(),
  stream: z.enum(['channel', 'stdout', 'stderr']),
});
export type ChildAttach = z.infer<typeof ChildAttach>;

/**
 * First line of the connection a warm worker in a Slurm job (remote-worker) opens to the
 * backend: the worker job's token, its Slurm job id and its node. The rest of that connection
 * is the worker's stdin (requests) and channel, as a local worker's pipes.
 */
export const WorkerAttach = z.object({
  ...base,
  kind: z.literal('worker_attach'),
  token: z.string(),
  job_id: z.string(),
  host: z.string(),
});
export type WorkerAttach = z.infer<typeof WorkerAttach>;

/** The first line of a connection to the backend's worker port: a worker job, or a run's child. */
export function parseConnectionAttach(line: string): WorkerAttach | ChildAttach {
  return parseProtocolLine(z.union([WorkerAttach, ChildAttach]), line);
}

export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}

/** Parses and validates one line of the channel. */
export function parseShimMessage(line: string): ShimMessage {
  return parseProtocolLine(ShimMessage, line);
}

/** Parses and validates the first line of a connection from a worker's child. */
export function parseChildAttach(line: string): ChildAttach {
  return parseProtocolLine(ChildAttach, line);
}

function parseProtocolLine<T>(schema: z.ZodType<T>, line: string): T {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    throw new ProtocolError(`shim sent a line that is not JSON: ${line.slice(0, 200)}`);
  }
  if (typeof raw === 'object' && raw !== null && 'protocol' in raw && raw.protocol !== PROTOCOL_VERSION) {
    throw new ProtocolError(
      `shim speaks protocol ${String(raw.protocol)}, this backend speaks ${PROTOCOL_VERSION}`,
    );
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ProtocolError(
      `shim sent an invalid message (${issue?.path.join('.') || 'message'}: ${issue?.message}): ${line.slice(0, 200)}`,
    );
  }
  return parsed.data;
}

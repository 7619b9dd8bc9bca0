import type { ShimMessage, VariableResultMessage } from '../context/protocol.js';
import { plural } from '../text.js';

/** Which variables a run's processing computes: triggered by raw data, by proc data, or all. */
export type RunData = 'raw' | 'proc' | 'all';

/** Whether cluster=True variables are computed here, left out (for a Slurm job), or alone. */
export type ClusterSelection = 'include' | 'exclude' | 'only';

export interface RunRequest {
  proposal: number;
  run: number;
  runData: RunData;
  /** A fake run with 10 trains instead of the run's files. */
  mock: boolean;
  /** Case-insensitive substrings of variable titles; dependencies are added back. */
  match: string[];
  cluster: ClusterSelection;
}

export type RunOutcome =
  | {
      ok: true;
      startTime: number | null;
      variables: VariableResultMessage[];
      h5Path: string;
      /**
       * Cluster variables a `cluster: 'exclude'` run left for a Slurm job (run_finished's
       * cluster_left_out; [] otherwise). processRun submits that job when it is not empty.
       */
      clusterLeftOut: string[];
    }
  | {
      ok: false;
      reason: string;
      detail?: string;
      /**
       * A run stopped midway (executors/salvage.ts): the variables it finished, then errors for
       * the one it was computing and for values that did not survive, all in its HDF5 file.
       */
      variables?: VariableResultMessage[];
    };

/** The message that ends a run's conversation. */
export type FinalRunMessage = Extract<ShimMessage, { kind: 'run_finished' | 'fatal' }>;

/** The outcome a run's final message gives, with the variable results sent before it. */
export function outcomeOf(final: FinalRunMessage, variables: VariableResultMessage[]): RunOutcome {
  if (final.kind === 'fatal') return { ok: false, reason: final.message, detail: final.traceback ?? undefined };
  return {
    ok: true,
    startTime: final.start_time,
    variables,
    h5Path: final.h5_path,
    clusterLeftOut: final.cluster_left_out ?? [],
  };
}

/** The outcome of a run's whole conversation; null while its final message is still to come. */
export function outcomeFromMessages(messages: readonly ShimMessage[]): RunOutcome | null {
  const variables: VariableResultMessage[] = [];
  for (const message of messages) {
    if (message.kind === 'variable_result') variables.push(message);
    if (message.kind === 'run_finished' || message.kind === 'fatal') return outcomeOf(message, variables);
  }
  return null;
}

/** `11 variables, 1 error`: what a run recorded, for its line in the terminal or the log. */
export function summariseVariables(variables: VariableResultMessage[]): string {
  const errors = variables.filter((v) => v.attributes !== null && 'error' in v.attributes).length;
  const counted = plural(variables.length, 'variable');
  return errors > 0 ? `${counted}, ${plural(errors, 'error')}` : counted;
}

export function describeRun(req: Pick<RunRequest, 'proposal' | 'run'>): string {
  return `r${req.run} (p${req.proposal})`;
}

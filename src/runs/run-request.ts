import type { VariableResultMessage } from '../context/protocol.js';

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
  | { ok: false; reason: string; detail?: string };

export function describeRun(req: Pick<RunRequest, 'proposal' | 'run'>): string {
  return `r${req.run} (p${req.proposal})`;
}

/**
 * The starting context.py that `damnit init` writes: a few variables every beamline
 * wants (trains, duration, data volume) and, where the instrument is known, the pulse energy
 * from the X-ray gas monitor of its SASE beamline. Plain extra_data calls only, so that it runs
 * with any extra_data a context_python has.
 */
import { programName } from '../program-name.js';

/** The SASE beamline of each instrument, and the gas monitor (XGM) in front of it. */
const SASE_OF_INSTRUMENT: Record<string, string> = {
  FXE: 'SA1', SPB: 'SA1',
  HED: 'SA2', MID: 'SA2',
  SCS: 'SA3', SQS: 'SA3', SXP: 'SA3',
};
const XGM_OF_SASE: Record<string, string> = {
  SA1: 'SA1_XTD2_XGM/XGM/DOOCS',
  SA2: 'SA2_XTD1_XGM/XGM/DOOCS',
  SA3: 'SA3_XTD10_XGM/XGM/DOOCS',
};

const COMMON = `from datetime import timedelta

import numpy as np
from damnit_ctx import Variable


@Variable(title="Trains")
def trains(run):
    return len(run.train_ids)


@Variable(title="Duration")
def duration(run):
    stamps = run.train_timestamps()
    seconds = (stamps[-1] - stamps[0]) / np.timedelta64(1, "s")
    return str(timedelta(seconds=round(float(seconds))))


def gigabytes(directory):
    return sum(f.stat().st_size for f in directory.rglob("*") if f.is_file()) / 1e9


@Variable(title="Raw data [GB]")
def raw_gb(run, proposal_dir: "meta#proposal_path", number: "meta#run_number"):
    return gigabytes(proposal_dir / "raw" / f"r{number:04d}")


@Variable(title="Corrected data [GB]", data="proc")
def proc_gb(run, proposal_dir: "meta#proposal_path", number: "meta#run_number"):
    return gigabytes(proposal_dir / "proc" / f"r{number:04d}")
`;

function xgmVariables(xgm: string): string {
  return `

# The X-ray gas monitor in front of the instrument.
XGM = "${xgm}"


@Variable(title="Pulse energy [uJ]", summary="mean")
def pulse_energy(run):
    """Mean energy of the pulses of each train (samples above 1 uJ are pulses)."""
    samples = run[XGM + ":output", "data.intensityTD"].ndarray()
    pulses = samples > 1
    return np.where(pulses, samples, 0).sum(axis=1) / np.maximum(pulses.sum(axis=1), 1)


@Variable(title="Pulses per train")
def pulses_per_train(run):
    return int(np.median(run[XGM, "pulseEnergy.numberOfBunchesActual.value"].ndarray()))
`;
}

export interface ContextTemplate {
  /** What it was chosen for, for the message: `MID (SA2)`, or `any instrument`. */
  label: string;
  text: string;
}

/** The starting context for an instrument (FXE, SPB, HED, MID, SCS, SQS, SXP), or a general one. */
export function contextTemplate(instrument: string | null): ContextTemplate {
  const sase = instrument === null ? undefined : SASE_OF_INSTRUMENT[instrument.toUpperCase()];
  const xgm = sase === undefined ? undefined : XGM_OF_SASE[sase];
  const label = sase === undefined || instrument === null ? 'any instrument' : `${instrument.toUpperCase()} (${sase})`;
  const name = programName();
  const header = `"""Starting context for ${label}, written by '${name} init'.

Each function marked @Variable is one column of the run table, computed for every run.
Edit it to your experiment; '${name} check context.py' checks it without running it,
'${name} reprocess RUN' runs it.
"""
`;
  const extra = xgm === undefined
    ? `

# Add your instrument's devices here, e.g. the pulse energy from its X-ray gas monitor:
#   run["SA2_XTD1_XGM/XGM/DOOCS:output", "data.intensityTD"].ndarray()
`
    : xgmVariables(xgm);
  return { label, text: header + COMMON + extra };
}

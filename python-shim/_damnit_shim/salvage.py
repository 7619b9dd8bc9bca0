"""`salvage`: keep what a run that was stopped midway computed.

    damnit_shim.py --channel fd:3 salvage --out H5PATH [--interrupted NAME --reason TEXT]
        [--recorded NAME]... [--wait-for PID]

A run killed, timed out or cancelled leaves its staged variables next to the run's file
(run_staging.py). Under the run's lock, this applies them to the file, with `NAME` (the variable
that was running) recorded as an error giving `TEXT`. Each `--recorded` variable (those the
orchestrator has already recorded in runs.sqlite) that no staging holds, because the run was
stopped while changing its staging file, is recorded as an error too, so that the file and the
database agree. Says `salvaged` with the number of stagings applied and those lost names.
"""
import argparse
import os
import time

from _damnit_shim import h5writer
from _damnit_shim.h5_entries import entry_names_of
from _damnit_shim.run_staging import staging_path, take_applied_mark


class RunStopped(Exception):
    """A variable whose run was stopped (time limit, kill, cancel) before it finished."""


LOST = ("its value was lost: the run was stopped while writing its file; "
        "reprocess the run to compute it again")


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise ValueError(message)


def parse_args(argv):
    parser = _Parser(prog="damnit_shim.py salvage", add_help=False)
    parser.add_argument("--out", required=True)
    parser.add_argument("--interrupted")
    parser.add_argument("--reason", default="the run was stopped")
    parser.add_argument("--recorded", action="append", default=[])
    # The stopped run's process: waited for, and its staging recognised if already applied.
    parser.add_argument("--wait-for", type=int)
    return parser.parse_args(argv)


def wait_for_end(pid, limit_s=60.0):
    """Waits for the stopped run's process to be gone: its staging is applied only then."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        except PermissionError:
            pass
        time.sleep(0.05)


def main(channel, argv):
    try:
        args = parse_args(argv)
    except ValueError as e:
        channel.send("fatal", message="salvage: %s" % e, traceback=None)
        return 2
    if args.wait_for is not None:
        wait_for_end(args.wait_for)
    writer = h5writer.RunFileWriter(args.out)
    lost = []

    def before_merge(adopted):
        stopped = None if args.wait_for is None else staging_path(args.out, args.wait_for)
        staged = set()
        for staging in adopted:
            staged |= entry_names_of(staging)
        # Another writer's commit may have applied the stopped run's staging already.
        if stopped is not None and stopped not in adopted and take_applied_mark(stopped):
            staged |= set(args.recorded)
        lost.extend(name for name in args.recorded if name not in staged and name != args.interrupted)
        for name in lost:
            writer.add(name, error=RunStopped(LOST))
        if args.interrupted:
            writer.add(args.interrupted, error=RunStopped(args.reason))

    try:
        adopted = writer.commit(before_merge=before_merge)
    except Exception as e:
        writer.abort()
        channel.send("fatal", traceback=None, message="Could not write %s: %s" % (args.out, e))
        return 1
    channel.send("salvaged", adopted=len(adopted), lost=lost)
    return 0

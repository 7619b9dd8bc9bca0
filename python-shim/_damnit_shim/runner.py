"""`run`: compute a context's variables for one run and write the run's HDF5 file.

    damnit_shim.py --channel fd:3 run CONTEXT_FILE --proposal P --run R
        --run-data raw|proc|all --proposal-path PATH --out H5PATH
        [--mock] [--match S]... [--cluster include|exclude|only] [--mymdc-source SPEC]
        [--memory-limit auto|GB]

Messages: run_started; for each stored variable, variable_started before it runs and, once
its result or error is staged for the HDF5 file, variable_result (none for a variable that
returned None); then, once the run's file is committed, run_finished (with --cluster exclude,
it names the cluster variables left for a Slurm job); or a single `fatal` when the run cannot
be processed at all. A run stopped midway leaves its staged variables for `salvage`. Execution follows contract section 5;
arguments are read in run_arguments.py, variables computed in variable_execution.py, results
and summaries made in results.py, and the file is written by h5writer.py.
The orchestrator records the database rows from these messages.
"""
import logging
import os
import sys
import time
import traceback

from _damnit_shim import h5writer, memory_limit, results, xd_compat
from _damnit_shim.context_loader import ContextLoadError, load_context
from _damnit_shim.mock_run import mock_run
from _damnit_shim.run_arguments import UsageError, parse_args
from _damnit_shim.variable_execution import RunContext, execute

log = logging.getLogger("ctxrunner")


def located_problem(problem):
    """`context.py:LINE:COL: message` for one load problem."""
    where = os.path.basename(problem.get("file") or "context.py")
    for part in ("line", "column"):
        if problem.get(part) is None:
            break
        where += ":%d" % problem[part]
    return "%s: %s" % (where, problem["message"])


def select_variables(loaded, run_data, cluster, matches, among=None):
    """Names to compute, in execution order: those (of `among`, default all) of this
    trigger (data after promotion), cluster choice and --match (title substrings,
    case-insensitive), plus every dependency of those. Ordered as the reference orders the
    variables it selected (see CompiledContext.selection)."""
    base = loaded
    if among is not None:
        base = loaded.subset([name for name in loaded.variables if name in among])
    selected = base.selection(run_data=run_data,
                              cluster=None if cluster == "include" else cluster == "only",
                              name_matches=matches)
    return list(base.subset(selected).ordered_vars())


def _open(args, names, loaded):
    """(run object, names still to compute, whether only raw variables can run).
    Proc data missing: raw variables only."""
    if args.mock:
        log.info("Using mock run for testing")
        return mock_run(), names, False
    data = "raw" if args.run_data == "raw" else "all"
    if data == "all" and not xd_compat.has_run_data(args.proposal_path, args.run, "proc"):
        log.warning("Proc data is unavailable, only raw variables will be executed.")
        data = "raw"
        names = select_variables(loaded, "raw", "include", [], among=names)
    return xd_compat.open_run(args.proposal_path, args.run, data), names, data == "raw"


def left_out_cluster(loaded, args, raw_only):
    """The cluster variables `--cluster exclude` leaves for a Slurm job (`--cluster only`)."""
    if args.cluster != "exclude":
        return []
    run_data = "raw" if raw_only else args.run_data
    return [name for name in select_variables(loaded, run_data, "only", args.match)
            if loaded.graph.cluster[name]]


def _start_time(args, run):
    if args.mock:
        return time.time()
    try:
        return float(xd_compat.start_time(run))
    except Exception:
        log.warning("Could not find the run's start time", exc_info=True)
        return None


class _WriteError(Exception):
    """Staging a variable failed: the run cannot go on writing its file."""

    def __init__(self, error):
        super().__init__(str(error))
        self.error = error
        self.traceback = traceback.format_exc()


def _stage(channel, writer, name, outcome):
    """Stages a finished variable for the run's file and reports it; one that returned None
    (nothing stored, the previous value stays) is not reported."""
    error = outcome.error
    summary = None
    try:
        if error is None:
            if outcome.result is None:
                return
            summary = results.summarise(outcome.result, name)
            if summary is None and outcome.result.data is None and outcome.result.preview is None:
                return
            error = writer.add(name, result=outcome.result, summary=summary)
        else:
            writer.add(name, error=error)
    except Exception as e:
        raise _WriteError(e)
    fields = results.error_fields(error) if error is not None else results.message_fields(summary)
    channel.send("variable_result", name=name, duration_s=outcome.duration, **fields)


def main(channel, argv):
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(levelname)s:%(name)s:%(message)s")
    try:
        args = parse_args(argv)
    except UsageError as e:
        channel.send("fatal", message="run: %s" % e, traceback=None)
        return 2
    memory_limit.apply(args.memory_limit)
    try:
        return _run(channel, args)
    except Exception as e:
        # A bug of ours, not of the context: still one clear message, never a bare crash.
        channel.send("fatal", traceback=traceback.format_exc(),
                     message="Internal error of the run shim: %s: %s"
                     % (type(e).__name__, results.error_message(e)))
        return 1


def _run(channel, args):
    log.info("proposal=%d, run=%d, run_data=%s%s%s", args.proposal, args.run, args.run_data,
             ", mock" if args.mock else "", ", match=%s" % args.match if args.match else "")

    try:
        loaded = load_context(args.context_file)
    except ContextLoadError as e:
        channel.send("fatal", traceback=e.traceback, message="context.py failed to load:\n"
                     + "\n".join(located_problem(p) for p in e.problems))
        return 1
    except OSError as e:
        channel.send("fatal", traceback=None, message="Cannot read the context file %s: %s"
                     % (args.context_file, e.strerror or e))
        return 1

    names = select_variables(loaded, args.run_data, args.cluster, args.match)
    try:
        run, names, raw_only = _open(args, names, loaded)
    except Exception as e:
        channel.send("fatal", traceback=traceback.format_exc(),
                     message="Run %d of proposal %d cannot be opened from %s: %s"
                     % (args.run, args.proposal, args.proposal_path, results.error_message(e)))
        return 1
    stored_names = [n for n in names if not loaded.variables[n].transient]
    log.info("Using %d variables (of %d) from context file", len(names), len(loaded.variables))
    channel.send("run_started", proposal=args.proposal, run=args.run, run_data=args.run_data,
                 variables=stored_names)

    run_context = RunContext(args.proposal, args.run, args.proposal_path, args.mymdc_source,
                             mock=args.mock)
    writer = h5writer.RunFileWriter(args.out)
    try:
        execute(loaded, names, run, run_context,
                on_start=lambda name: channel.send("variable_started", name=name),
                on_done=lambda name, outcome: _stage(channel, writer, name, outcome))
        start_time = _start_time(args, run)
        log.info("Writing %d variables to %s", len(writer.names), args.out)
        writer.commit(start_time)
    except _WriteError as e:
        # What was staged stays for `salvage`, as after a kill.
        channel.send("fatal", traceback=e.traceback,
                     message="Could not write %s: %s" % (args.out, results.error_message(e.error)))
        return 1
    except Exception as e:
        channel.send("fatal", traceback=traceback.format_exc(),
                     message="Could not write %s: %s" % (args.out, results.error_message(e)))
        return 1

    channel.send("run_finished", proposal=args.proposal, run=args.run, start_time=start_time,
                 h5_path=os.path.abspath(args.out),
                 cluster_left_out=left_out_cluster(loaded, args, raw_only))
    return 0

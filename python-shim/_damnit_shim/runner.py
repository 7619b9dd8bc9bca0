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
results and summaries are made in results.py, the file is written by h5writer.py.
The orchestrator records the database rows from these messages.
"""
import argparse
import inspect
import logging
import os
import sys
import time
import traceback
from fnmatch import fnmatch
from pathlib import Path

from _damnit_shim import h5writer, memory_limit, mymdc, results, xd_compat
from _damnit_shim.context_loader import ContextLoadError, load_context
from _damnit_shim.mock_run import mock_run
from damnit_ctx import Skip

log = logging.getLogger("ctxrunner")


class DependencyError(RuntimeError):
    """A variable could not run because dependencies it needs failed or were skipped.
    Its message draws the chain of failures as a tree."""

    def __init__(self, dep_errors):
        self.dep_errors = list(dep_errors)
        super().__init__("\n".join(["Skipped due to missing dependency:"]
                                   + _tree_lines(self.dep_errors, "")))


def _tree_lines(dep_errors, prefix):
    lines = []
    for index, (name, error) in enumerate(dep_errors):
        last = index == len(dep_errors) - 1
        head = prefix + ("└ " if last else "├ ")
        child_prefix = prefix + ("   " if last else "│  ")
        if isinstance(error, DependencyError):
            lines.append("%s(%s) skipped" % (head, name))
            lines.extend(_tree_lines(error.dep_errors, child_prefix)
                         if error.dep_errors else [child_prefix + "<no details>"])
            continue
        message = results.error_message(error).splitlines()
        if not message:
            lines.append("%s(%s) failed: %s" % (head, name, type(error).__name__))
            continue
        lines.append("%s(%s) failed: %s: %s" % (head, name, type(error).__name__, message[0]))
        lines.extend(child_prefix + line for line in message[1:])
    return lines


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


_parser = None


def parse_args(argv):
    global _parser
    # Built once: a warm worker's children inherit it.
    if _parser is None:
        _parser = _make_parser()
    args = _parser.parse_args(argv)
    if not mymdc.valid_spec(args.mymdc_source):
        raise UsageError("--mymdc-source: %s" % mymdc.SPEC_HELP)
    try:
        memory_limit.parse(args.memory_limit)
    except ValueError:
        raise UsageError("--memory-limit: 'auto' or a number of GB, not %r" % args.memory_limit)
    return args


def _make_parser():
    parser = _Parser(prog="damnit_shim.py run", add_help=False)
    parser.add_argument("context_file")
    parser.add_argument("--proposal", type=int, required=True)
    parser.add_argument("--run", type=int, required=True)
    parser.add_argument("--run-data", choices=("raw", "proc", "all"), required=True)
    parser.add_argument("--proposal-path", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--mock", action="store_true")
    parser.add_argument("--match", action="append", default=[])
    parser.add_argument("--cluster", choices=("include", "exclude", "only"), default="include")
    parser.add_argument("--mymdc-source", default="mymdc")
    parser.add_argument("--memory-limit", default="0", help="auto, or GB (0: none)")
    return parser


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


class RunContext:
    """What `meta#`, `mymdc#` and `param#` arguments are made from. The backend has no
    parameter values; a Pipeline may give some."""

    def __init__(self, proposal, run_number, proposal_path, mymdc_spec, params=None,
                 mock=False):
        self.proposal = proposal
        self.run_number = run_number
        # A mock run has no files, so no proposal directory either (as the reference's mock
        # run): a variable that would read the proposal's files fails at once.
        self.proposal_path = "" if mock or not proposal_path else Path(proposal_path)
        self._mymdc_path = proposal_path
        self.params = params or {}
        self._mymdc_spec = mymdc_spec
        self._mymdc = None

    def mymdc_field(self, field):
        if self._mymdc is None:
            self._mymdc = mymdc.make_source(self._mymdc_spec, self.proposal, self._mymdc_path)
        return self._mymdc.field(self.run_number, field)

    def meta(self, annotation):
        if annotation == "meta#run_number":
            return self.run_number
        if annotation == "meta#proposal":
            return self.proposal
        return self.proposal_path  # meta#proposal_path, meta#proposal_dir


class Outcome:
    """How one variable went: `result` (stored), `error`, or neither (returned None)."""

    def __init__(self, name, duration=None, result=None, summary=None, error=None):
        self.name = name
        self.duration = duration
        self.result = result
        self.summary = summary
        self.error = error


def _arguments(var, dep_values, dep_names, run_context):
    """(kwargs, missing dependency names, missing parameter names) for calling `var`."""
    kwargs = {}
    missing = []
    missing_params = []
    # A group's variable has its `self#` annotations resolved: not those of its function.
    annotations = var.annotations()
    parameters = list(inspect.signature(var.func).parameters.values())[1:]  # after `run`
    for param in parameters:
        annotation = annotations.get(param.name)
        if not isinstance(annotation, str):
            continue
        has_default = param.default is not inspect.Parameter.empty
        if annotation.startswith("var#"):
            pattern = annotation[len("var#"):]
            matches = [n for n in dep_values if fnmatch(n, pattern)]
            if matches == [pattern]:
                kwargs[param.name] = dep_values[pattern]
            elif matches:
                kwargs[param.name] = {n: dep_values[n] for n in matches}
            elif not has_default:
                missing.extend(n for n in dep_names if fnmatch(n, pattern) and n not in missing)
        elif annotation.startswith("param#"):
            key = annotation[len("param#"):]
            if key in run_context.params:
                kwargs[param.name] = run_context.params[key]
            elif not has_default:
                missing_params.append(key)
        elif annotation.startswith("mymdc#"):
            kwargs[param.name] = run_context.mymdc_field(annotation[len("mymdc#"):])
        elif annotation in ("meta#run_number", "meta#proposal", "meta#proposal_path",
                            "meta#proposal_dir"):
            kwargs[param.name] = run_context.meta(annotation)
        else:
            raise RuntimeError("Unknown path '%s' for variable '%s'" % (annotation, var.title))
    return kwargs, missing, missing_params


def execute(loaded, names, run, run_context, label="", on_start=None, on_done=None):
    """Compute `names` in order; returns {name: Outcome} for non-transient variables. Log
    lines start with `[label] ` (a Pipeline's name) when a label is given. `on_start(name)`
    and `on_done(name, outcome)` are told about each non-transient variable as it goes."""
    prefix = "[%s] " % label if label and label != "default" else ""
    dep_values = {}  # what dependants receive
    errors = {}  # including transient variables', for dependants' messages
    outcomes = {}
    for name in names:
        var = loaded.variables[name]
        if on_start is not None and not var.transient:
            on_start(name)
        start = time.perf_counter()
        _compute(var, name, names, run, run_context, prefix, start, dep_values, errors, outcomes)
        if on_done is not None and not var.transient:
            on_done(name, outcomes[name])

    return {name: o for name, o in outcomes.items() if not loaded.variables[name].transient}


def _compute(var, name, names, run, run_context, prefix, start, dep_values, errors, outcomes):
    """One variable of `execute`: its Outcome in `outcomes`, its value in `dep_values`."""
    try:
        kwargs, missing, missing_params = _arguments(var, dep_values, names, run_context)
        if missing:
            log.warning("%sSkipping %s because of missing dependencies: %s",
                        prefix, name, ", ".join(missing))
            dep_errors = [(dep, errors[dep]) for dep in missing if dep in errors]
            if dep_errors:
                error = DependencyError(dep_errors)
                if all(isinstance(e, Skip) for _, e in dep_errors):
                    error = Skip(str(error))
            else:
                error = Skip("Dependencies returned no data:"
                             + "".join("\n- '%s'" % dep for dep in missing))
            errors[name] = error
            outcomes[name] = Outcome(name, error=error)
            return
        if missing_params:
            # As the reference: no error either, so nothing stored changes.
            log.warning("%sSkipping %s because of missing parameter values: %s",
                        prefix, name, ", ".join(missing_params))
            outcomes[name] = Outcome(name)
            return
        returned = var.func(run, **kwargs)
        if var.transient:
            value = results.transient_value(returned)
            result = None
        else:
            result = results.make_result(returned, var)
            value = result.data
    except (Exception, SystemExit) as e:
        sys.stdout.flush()
        e = memory_limit.explain(e)
        if isinstance(e, Skip):
            log.error("%sSkipped %s: %s", prefix, name, e)
        else:
            log.error("%sCould not get data for %s", prefix, name, exc_info=True)
        errors[name] = e
        outcomes[name] = Outcome(name, time.perf_counter() - start, error=e)
        return
    # User output printed by the function goes before our log line.
    sys.stdout.flush()
    duration = time.perf_counter() - start
    log.info("%sComputed %s in %.03f s", prefix, name, duration)
    if value is not None:
        dep_values[name] = value
    outcomes[name] = Outcome(name, duration, result=result)


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

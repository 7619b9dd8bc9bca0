"""Computing a context's variables on one run (contract section 5): the arguments each function
gets (`var#`, `param#`, `mymdc#`, `meta#`), in dependency order, each variable's Outcome, and the
errors of those whose dependencies failed. Used by `run` (runner.py) and by a Pipeline
(compiled.py)."""
import inspect
import logging
import sys
import time
from fnmatch import fnmatch
from pathlib import Path

from _damnit_shim import memory_limit, mymdc, results
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

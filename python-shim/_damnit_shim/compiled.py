"""A context's variables, checked and ordered: what the backend runs and a Pipeline holds.

    compiled = CompiledContext(variables, code, position)
    compiled.problems        # load problems (ctx_rules.Problem): nothing may run
    compiled.warnings        # problems that fail or skip only their variable at run time
    compiled.graph           # dependencies, promotion, the reference's execution order
    compiled.filter(...)     # a subset, as the reference selects for a trigger or --match
    compiled.execute(run, run_number, proposal, param_values) -> Results

Standard library only at import (the offline checker builds these too); running variables
imports the run executor.
"""
import inspect
import time

from _damnit_shim import ctx_rules
from damnit_ctx import Cell, RunData


class ContextFileErrors(RuntimeError):
    """The reference's exception for a context that breaks the rules: one message each."""

    def __init__(self, problems):
        super().__init__(problems)
        self.problems = problems

    def __str__(self):
        return "\n".join(self.problems)


class Results:
    """What Pipeline.execute computed: `cells` {name: Cell} (with the run's `start_time`),
    and `errors` {name: exception} of the variables that failed or were skipped."""

    def __init__(self, cells, errors, ctx):
        self.cells = cells
        self.errors = errors
        self.ctx = ctx


def code_position(func):
    """(line, column) of a function for problems about it: its first line (that of its first
    decorator) when nothing better is known."""
    code = getattr(func, "__code__", None)
    return (code.co_firstlineno, None) if code is not None else (None, None)


def parameters(func, annotations):
    """The parameters after `run`, with their string annotations."""
    try:
        params = list(inspect.signature(func).parameters.values())[1:]
    except (TypeError, ValueError):
        return []
    found = []
    for param in params:
        annotation = annotations.get(param.name)
        found.append({
            "name": param.name,
            "annotation": annotation if isinstance(annotation, str) else None,
            "has_default": param.default is not inspect.Parameter.empty,
        })
    return found


def spec_of(var, position=code_position):
    """The ctx_rules spec of a Variable (a group's copy: its resolved annotations)."""
    line, column = position(var.func)
    return {
        "name": var.name,
        "title": var.title,
        "data": var._data,
        "cluster": var.cluster,
        "tags": var.tags,
        "units": var.units,
        "summary": var.summary,
        "transient": var.transient,
        "line": line,
        "column": column,
        "params": parameters(var.func, var.annotations()),
    }


class CompiledContext:
    def __init__(self, variables, code="", position=code_position, specs=None):
        self.variables = dict(variables)
        self.code = code
        self.position = position
        if specs is None:
            specs = [spec_of(var, position) for var in self.variables.values()]
        self.specs = specs
        problems, self.graph = ctx_rules.check_context(self.specs)
        self.problems = [p for p in problems if p.scope == "load"]
        self.warnings = [p for p in problems if p.scope != "load"]

    @property
    def vars(self):
        """The variables by name (the reference's name for them)."""
        return self.variables

    def problem_exception(self):
        """What the reference raises for this context's load problems, or None."""
        if not self.problems:
            return None
        first = self.problems[0]
        if first.error == "CycleError":
            from graphlib import CycleError
            return CycleError(first.message)
        if first.error == "KeyError":
            return KeyError(first.message)
        return ContextFileErrors([p.message for p in self.problems])

    def raise_problems(self):
        error = self.problem_exception()
        if error is not None:
            raise error

    def ordered_vars(self):
        """Names in the order they run."""
        return tuple(self.graph.order)

    def all_dependencies(self, *variables):
        """Names of every variable the given ones need, directly or not."""
        found = set()
        for var in variables:
            found.update(self.graph.all_dependencies(var.name))
        return found

    def selection(self, run_data=RunData.ALL, cluster=None, name_matches=(), variables=()):
        """Names of the variables for a trigger (`run_data`, after promotion), a cluster choice
        (None: both), exact `variables` names or else `name_matches` (title substrings, any
        case), then the dependencies they need: in the order the reference keeps them."""
        run_data = RunData(run_data)
        chosen = []
        for name, var in self.variables.items():
            title = str(var.title or name).lower()
            if run_data is not RunData.ALL and self.graph.data[name] != run_data.value:
                continue
            if cluster is not None and self.graph.cluster[name] != cluster:
                continue
            if variables:
                if name not in variables:
                    continue
            elif name_matches and not any(m.lower() in title for m in name_matches):
                continue
            chosen.append(name)
        needed = set()
        for name in chosen:
            needed.update(self.graph.all_dependencies(name))
        return chosen + [name for name in self.variables if name in needed and name not in chosen]

    def filter(self, run_data=RunData.ALL, cluster=None, name_matches=(), variables=()):
        """A context of the selected variables and their dependencies (see `selection`)."""
        return self.subset(self.selection(run_data, cluster, name_matches, variables))

    def subset(self, names):
        """The context of these variables (which must include their dependencies)."""
        specs = {spec["name"]: spec for spec in self.specs}
        return CompiledContext({n: self.variables[n] for n in names}, self.code, self.position,
                               [specs[n] for n in names])

    def vars_to_dict(self, inc_transient=False):
        """What the database keeps of each variable, by name."""
        return {name: {"title": v.title, "description": v.description, "tags": v.tags,
                       "attributes": None, "type": None}
                for name, v in self.variables.items() if inc_transient or not v.transient}

    def execute(self, run_data, run_number, proposal, param_values, *, label=""):
        """Runs every variable on `run_data` (what each function gets as `run`)."""
        from _damnit_shim import results, variable_execution, xd_compat

        is_run = results.isinstance_no_import(run_data, "extra_data", "DataCollection")
        start_time = float(xd_compat.start_time(run_data)) if is_run else time.time()
        run_context = variable_execution.RunContext(
            proposal, run_number, _proposal_path(run_data, is_run), "mymdc", params=param_values)
        outcomes = variable_execution.execute(self, list(self.ordered_vars()), run_data,
                                              run_context, label=label)
        cells = {"start_time": Cell(start_time)}
        for name, outcome in outcomes.items():
            if outcome.result is not None:
                r = outcome.result
                cells[name] = Cell(r.data, summary=r.summary, summary_value=r.summary_value,
                                   bold=r.bold, background=r.background, preview=r.preview,
                                   units=r.units)
        errors = {name: o.error for name, o in outcomes.items() if o.error is not None}
        return Results(cells, errors, self)


def _proposal_path(run_data, is_run):
    """The proposal's directory, from where the run's files are (`<proposal>/raw/rNNNN/f`)."""
    if not is_run:
        return ""
    from pathlib import Path
    return Path(*Path(run_data.files[0].filename).parts[:-3])

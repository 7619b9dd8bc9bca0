"""The rules a context file's variables must follow, shared by two readers.

The shim applies them to the Variable objects of an imported context; the
offline validator (Pyodide) applies them to what it reads from the source's
AST. Both describe each variable as a plain dict (a "spec"), so that one set of
rules, with the reference's wording, serves both. Standard library only, and
valid on Python 3.9 to 3.14.

A spec has these keys:
  name (a group's variable: "<group>.<method>"), title (None when not given),
  data (None/'raw'/'proc' as written),
  cluster, tags, units, summary, transient, line (of the def, or None),
  params: [{"name", "annotation" (str or None), "has_default"}], excluding `run`.
Any value the static reader could not determine is UNKNOWN, and rules skip it.
"""
import fnmatch
from collections import Counter

UNKNOWN = object()

META_ANNOTATIONS = (
    "meta#run_number",
    "meta#proposal",
    "meta#proposal_path",
    # The seed documents the proposal root under this name; same value.
    "meta#proposal_dir",
)
MYMDC_FIELDS = ("sample_name", "run_type", "techniques")

# Names a variable cannot have (compared without case: SQLite column names ignore it): the
# runs view's own columns, and the run's start time, which its HDF5 file keeps as a variable.
RESERVED_NAMES = {
    "start_time": "the run's file and the runs table keep the run's start time under it",
    "proposal": "it is a column of the runs table",
    "run": "it is a column of the runs table",
    "added_at": "it is a column of the runs table",
}

# numpy functions that reduce an array to one value, for `summary=`.
NUMPY_REDUCTIONS = frozenset("""
    all amax amin any argmax argmin average count_nonzero max mean median min
    nanargmax nanargmin nanmax nanmean nanmedian nanmin nanpercentile nanprod
    nanquantile nanstd nansum nanvar prod ptp size std sum var
""".split())


class Problem:
    """One reason a context file is not valid.

    scope "load": the context fails to load and nothing runs (contract section 5).
    scope "static": the context loads, but at run time that variable fails or is skipped
    (e.g. an unknown annotation): a warning, for the loader and validation alike.
    `error` names the exception the reference raises for a load problem: "CycleError",
    "KeyError" (a missing dependency) or "ContextFileErrors" (every other rule).
    """

    def __init__(self, message, name=None, line=None, scope="load", error="ContextFileErrors"):
        self.message = message
        self.name = name
        self.line = line
        self.scope = scope
        self.error = error

    def to_dict(self):
        return {"message": self.message, "variable": self.name,
                "line": self.line, "scope": self.scope}

    def __repr__(self):
        return "Problem(%r, line=%r)" % (self.message, self.line)


def known(value):
    return value is not UNKNOWN


def title_of(spec):
    title = spec.get("title")
    return spec["name"] if title is None else title


def name_problem(name, line):
    """The problem with a variable's name, or None: the reference's rule (a Python identifier
    or dotted name), and the names the run's file and the runs table keep for themselves."""
    if not isinstance(name, str) or not all(part.isidentifier() for part in name.split(".")):
        return Problem("The variable name %r is not a valid Python identifier or dotted name"
                       % (name,), name, line)
    reason = RESERVED_NAMES.get(name.lower())
    if reason is not None:
        return Problem("The variable name %r is reserved: %s" % (name, reason), name, line)
    return None


def annotation_problem(spec, param):
    """The problem with one parameter's annotation, or None."""
    annotation = param.get("annotation")
    if not isinstance(annotation, str):
        return None  # Non-string annotations (e.g. `x: int`) are ignored, as in the reference.
    if annotation.startswith("var#") or annotation in META_ANNOTATIONS:
        return None
    if annotation.startswith("param#"):
        if param.get("has_default", False):
            return None
        # The backend has no parameter values: the reference skips such a variable.
        return Problem(
            "Variable '%s' needs the parameter value '%s' for argument '%s' and has no default "
            "for it: the backend gives no parameter values, so this variable is skipped in "
            "every run" % (spec["name"], annotation[len("param#"):], param["name"]),
            spec["name"], spec.get("line"), scope="static")
    if annotation.startswith("mymdc#"):
        field = annotation[len("mymdc#"):]
        if field in MYMDC_FIELDS:
            return None
        return Problem(
            "Argument '%s' of variable '%s' has an invalid MyMdC dependency: '%s'"
            % (param["name"], spec["name"], field),
            spec["name"], spec.get("line"))
    return Problem(
        "Unknown path '%s' for variable '%s'" % (annotation, title_of(spec)),
        spec["name"], spec.get("line"), scope="static")


def declaration_problems(spec):
    """Problems of a variable's name, data, tags and units (what the reference's
    Variable.check() finds)."""
    name, line = spec["name"], spec.get("line")
    problems = []
    problem = name_problem(name, line)
    if problem is not None:
        problems.append(problem)
    data = spec.get("data")
    if known(data) and data not in (None, "raw", "proc"):
        problems.append(Problem(
            "data=%r for variable %s (can be 'raw'/'proc')" % (data, name), name, line))
    tags = spec.get("tags")
    if known(tags) and tags is not None:
        tag_list = (tags,) if isinstance(tags, str) else tags
        if not isinstance(tag_list, (list, tuple, set, frozenset)) or not all(
                isinstance(t, str) and t != "" for t in tag_list):
            problems.append(Problem(
                "tags=%r for variable %s (must be a non-empty string or an iterable of strings)"
                % (tags, name), name, line))
    units = spec.get("units")
    if known(units) and units is not None and (not isinstance(units, str) or units == ""):
        problems.append(Problem(
            "units=%r for variable %s (must be a non-empty string)" % (units, name), name, line))
    return problems


def variable_problems(spec):
    """Problems of one variable on its own (decorator arguments, annotations)."""
    name, line = spec["name"], spec.get("line")
    problems = declaration_problems(spec)
    summary = spec.get("summary")
    if known(summary) and summary is not None and (
            not isinstance(summary, str) or summary not in NUMPY_REDUCTIONS):
        problems.append(Problem(
            "summary=%r for variable %s is not a numpy reduction (such as 'mean', 'sum' or 'nanmax')"
            % (summary, name), name, line, scope="static"))
    for param in spec.get("params", ()):
        problem = annotation_problem(spec, param)
        if problem is not None:
            problems.append(problem)
    return problems


def var_annotations(spec):
    """(param name, dependency pattern, has_default) for each `var#` parameter."""
    return [(p["name"], p["annotation"][len("var#"):], p.get("has_default", False))
            for p in spec.get("params", ())
            if isinstance(p.get("annotation"), str) and p["annotation"].startswith("var#")]


class ContextGraph:
    """Dependencies, promotion and execution order of a set of variable specs."""

    def __init__(self, specs):
        self.specs = {s["name"]: s for s in specs}
        self.names = [s["name"] for s in specs]
        self.direct = {}
        self.problem = None  # a load problem that prevents ordering
        for spec in specs:
            deps = []
            for _, pattern, _ in var_annotations(spec):
                matches = fnmatch.filter(self.names, pattern)
                if not matches:
                    self.problem = Problem(
                        "Missing dependency: %r for %r" % (pattern, spec["name"]),
                        spec["name"], spec.get("line"), error="KeyError")
                    return
                deps.extend(m for m in matches if m not in deps)
            self.direct[spec["name"]] = deps
        self.order = self._reference_order()
        if self.order is not None:
            self._promote()

    def _reference_order(self):
        """The order the reference runs variables in (graphlib's static_order): first every
        variable without dependencies, then every one whose dependencies all ran, and so on,
        in waves. A variable enters the graph where it is defined or, if earlier, where a
        variable defined before it names it as a dependency (in the order of that variable's
        parameters, where the reference's order depends on Python's string hashing)."""
        waiting, dependants, nodes = {}, {}, []
        for name in self.names:
            for node in [name] + self.direct[name]:
                if node not in waiting:
                    waiting[node] = 0
                    dependants[node] = []
                    nodes.append(node)
            waiting[name] += len(self.direct[name])
            for dep in self.direct[name]:
                dependants[dep].append(name)
        cycle = _find_cycle(nodes, dependants)
        if cycle is not None:
            self.problem = Problem(
                "These Variables have cyclical dependencies, which is not allowed: %r" % (cycle,),
                cycle[0], self.specs[cycle[0]].get("line"), error="CycleError")
            return None
        order = []
        wave = [node for node in nodes if waiting[node] == 0]
        while wave:
            order.extend(wave)
            next_wave = []
            for node in wave:
                for dependant in dependants[node]:
                    waiting[dependant] -= 1
                    if waiting[dependant] == 0:
                        next_wave.append(dependant)
            wave = next_wave
        return order

    def all_dependencies(self, name):
        seen, stack = [], list(self.direct[name])
        while stack:
            dep = stack.pop(0)
            if dep not in seen:
                seen.append(dep)
                stack.extend(self.direct[dep])
        return seen

    def _promote(self):
        """A variable with no explicit data that depends on a proc one becomes proc;
        one that depends on a cluster variable becomes cluster."""
        self.data = {}
        self.cluster = {}
        for name in self.order:
            spec = self.specs[name]
            deps = self.all_dependencies(name)
            data = spec.get("data")
            if data in (None, UNKNOWN) and any(self.data[d] == "proc" for d in deps):
                data = "proc"
            self.data[name] = data if data in ("raw", "proc") else "raw"
            cluster = spec.get("cluster")
            self.cluster[name] = bool(cluster is True or any(self.cluster[d] for d in deps))


def _find_cycle(nodes, dependants):
    """A cycle as graphlib reports it: walking from each node in turn along its dependants,
    the first path that comes back to a node on it, as [a, b, ..., a]."""
    seen, stack, on_stack, iterators = set(), [], {}, []
    for start in nodes:
        if start in seen:
            continue
        node = start
        while True:
            if node in seen:
                if node in on_stack:
                    return stack[on_stack[node]:] + [node]
            else:
                seen.add(node)
                iterators.append(iter(dependants[node]))
                on_stack[node] = len(stack)
                stack.append(node)
            while stack:
                node = next(iterators[-1], None)
                if node is not None:
                    break
                del on_stack[stack.pop()]
                iterators.pop()
            else:
                break
    return None


def check_context(specs):
    """All problems of a context's variables, in the reference's order, and the graph."""
    not_text = [s for s in specs if not isinstance(s["name"], str)]
    if not_text:
        # A name set by hand to something else than text: nothing can be matched against it.
        return [name_problem(s["name"], s.get("line")) for s in not_text], None
    graph = ContextGraph(specs)
    if graph.problem is not None:
        return [graph.problem], graph

    problems = []
    for spec in specs:
        problems.extend(variable_problems(spec))
        name = spec["name"]
        if spec.get("data") != "raw":
            continue
        proc_deps = [d for d in graph.all_dependencies(name) if graph.data[d] == "proc"]
        if proc_deps:
            problems.append(Problem(
                "Variable %s is triggered by migration of raw data (data='raw'), but depends on "
                "these Variables that require proc data: %s\n"
                "Remove data='raw' for %s or change it to data='proc'"
                % (name, ", ".join(proc_deps), name), name, spec.get("line")))

    # Counted once each: a context may have thousands of variables.
    titles = Counter(title_of(s) for s in specs if known(s.get("title")))
    duplicated = {t for t, count in titles.items() if count > 1}
    if duplicated:
        bad = [s for s in specs if known(s.get("title")) and title_of(s) in duplicated]
        problems.append(Problem(
            "These Variables have duplicate titles between them: %s"
            % ", ".join(s["name"] for s in bad), bad[-1]["name"], bad[-1].get("line")))

    # MyMdC problems come last, as in the reference.
    problems.sort(key=lambda p: p.message.startswith("Argument '"))
    return problems, graph

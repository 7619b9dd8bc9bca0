"""`Pipeline`: load, select and run a context's variables from Python.

    pipe = Pipeline.from_context_file("context.py")
    res = pipe.select(match=["xgm"]).execute(data=run, param_values={"threshold": 3})
    res.cells["xgm_intensity"].data

A context file may also build its own: `Pipeline.default().add(...)` adds variables or groups
to what the file defines, `Pipeline.set_default(pipe)` makes `pipe` the whole context. While a
context runs, `pipeline_scope` gives it its own default Pipeline (nested loads get theirs).

The same machinery loads a context in the backend (context_loader.py), so a Pipeline sees the
variables, order and errors the backend does. Standard library only at import.
"""
import contextvars
import hashlib
import sys
from collections.abc import Sequence
from contextlib import contextmanager

from damnit_ctx import GroupError, RunData, Variable, is_group_instance

_DEFAULT_PIPELINE_STATE = contextvars.ContextVar("damnit_ctx_default_pipeline", default=None)


class _PipelineState:
    """The default Pipeline of one context being loaded, and where its groups were made."""

    def __init__(self, pipeline, path=None):
        self.pipeline = pipeline
        self.explicit = False  # set_default() was called: only that pipeline counts
        self.used = False  # default() or set_default() was called
        self.path = path
        # id(group) -> (group, code, instruction offset, line) of the call that made it in
        # `path`; the group is kept so that its id cannot be reused during the load.
        self.sites = {}


@contextmanager
def pipeline_scope(path=None):
    """A fresh default Pipeline while a context (the file `path`) runs."""
    token = _DEFAULT_PIPELINE_STATE.set(Pipeline._new_state(path))
    try:
        yield _DEFAULT_PIPELINE_STATE.get()
    finally:
        _DEFAULT_PIPELINE_STATE.reset(token)


def note_group_creation(group):
    """Remembers where in the context being loaded a group instance was made, for messages
    about it (called by every Group's __post_init__)."""
    state = _DEFAULT_PIPELINE_STATE.get()
    if state is None or state.path is None or id(group) in state.sites:
        return
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename != state.path:
        frame = frame.f_back
    if frame is not None:
        state.sites[id(group)] = (group, frame.f_code, frame.f_lasti, frame.f_lineno)


def _items_of(items):
    """Variables and groups of Pipeline.add's arguments: also in (nested) sequences, and in
    dicts {name: group}, which name groups that have none."""
    found = []

    def refuse(item):
        raise TypeError("Pipeline.add accepts Variable or Group instances (or dict[str, Group], "
                        "or sequences of them); got %r" % type(item))

    def add(item):
        if isinstance(item, Variable) or is_group_instance(item):
            found.append(item)
        elif isinstance(item, dict):
            for key, value in item.items():
                if is_group_instance(value):
                    if value.name is None:
                        value.name = key
                    found.append(value)
                elif isinstance(value, Variable):
                    found.append(value)
                elif isinstance(value, dict):
                    add(value)
                else:
                    refuse(item)
        elif isinstance(item, Sequence) and not isinstance(item, (str, bytes, bytearray)):
            for sub in item:
                add(sub)
        else:
            refuse(item)

    for item in items:
        add(item)
    return found


def build_compiled(variables, code, *, group_items=None, context=None, check=True):
    """A CompiledContext of `variables` plus the variables of `group_items` (named group
    instances) or of the groups reachable from the globals `context`. Group errors are
    raised; rule problems too when `check`, else left in its `problems`."""
    from _damnit_shim import groups
    from _damnit_shim.compiled import CompiledContext

    variables = dict(variables)
    if group_items:
        owners = {}
        for group in group_items:
            name = groups.group_name(group)
            if owners.setdefault(name, group) is not group:
                raise groups.located(GroupError(
                    "Group name %r is used by multiple group instances" % name), group)
        variables.update(groups.expand_groups({g.name: g for g in group_items}, variables))
    elif context is not None:
        variables.update(groups.expand_groups(context, variables))
    compiled = CompiledContext(variables, code or "")
    if check:
        compiled.raise_problems()
    return compiled


def collect_context(module_globals, state, code):
    """The compiled variables of an executed context (its globals, and the state of its
    pipeline_scope), as the reference collects them: its Variables and the variables of its
    groups, or what it put in its default Pipeline. Rule problems are left in `problems`."""
    from _damnit_shim import groups

    variables = {}
    for value in list(module_globals.values()):
        # Two Variables with one name: the later one wins, as in the reference.
        if isinstance(value, Variable) and value.func is not None:
            variables[value.name] = value
    if not state.used:
        return build_compiled(variables, code, context=module_globals, check=False)
    groups.assign_group_names(module_globals)
    found = [value for value in module_globals.values() if is_group_instance(value)]
    pipeline = state.pipeline
    if not state.explicit:
        pipeline._build_context(items=list(variables.values()) + found, check=False)
    return pipeline._build_context(code_override=code, check=False)


class Pipeline:
    """A set of variables (and group instances) to run together on one run.

    `proposal`, `run_number` and `param_values` give the `meta#` and `param#` arguments; the
    run is `data` if given, else opened with extra_data from `proposal` and `run_number`.
    """

    def __init__(self, proposal=None, run_number=None, *, name=None, data=None, run_data=None,
                 param_values=None, _context=None):
        self._name = name
        self.proposal = proposal
        self.run_number = run_number
        self.data = data
        self.run_data = self._normalize_run_data(run_data)
        self.param_values = dict(param_values or {})
        self._context = _context
        self._last_results = None

    @classmethod
    def _new_state(cls, path=None):
        return _PipelineState(cls(name="default"), path)

    @classmethod
    def default(cls):
        """The default Pipeline of the context being loaded: what it adds here is compiled
        along with the variables and groups it defines."""
        state = _DEFAULT_PIPELINE_STATE.get()
        if state is None:
            state = cls._new_state()
            _DEFAULT_PIPELINE_STATE.set(state)
        state.used = True
        return state.pipeline

    @classmethod
    def set_default(cls, pipeline):
        """Makes `pipeline` the whole context being loaded: the variables and groups the file
        defines are then ignored."""
        if not isinstance(pipeline, cls):
            raise TypeError("Pipeline.set_default expects a Pipeline instance")
        state = _DEFAULT_PIPELINE_STATE.get()
        if state is None:
            state = cls._new_state()
            _DEFAULT_PIPELINE_STATE.set(state)
        state.pipeline = pipeline
        state.explicit = True
        state.used = True
        return pipeline

    @property
    def name(self):
        """The name given, else a short digest of what the pipeline holds (log lines of a
        pipeline other than the default one start with `[name]`)."""
        if self._name is not None:
            return self._name
        parts = list(self.param_values) + [str(self.proposal), str(self.run_number)]
        if self._context is not None:
            parts += list(self._context.variables)
        return hashlib.sha256("|".join(parts).encode("utf-8")).hexdigest()[:12]

    def copy(self):
        return Pipeline(name=self._name, proposal=self.proposal, run_number=self.run_number,
                        data=self.data, run_data=self.run_data,
                        param_values=self.param_values.copy(), _context=self._context)

    def add(self, *items):
        """Adds Variables and Group instances (also in sequences, or as {name: group})."""
        self._build_context(items=_items_of(items))
        return self

    def union(self, other, *, on_conflict="error"):
        """A new Pipeline with the variables of both; two different variables of one name are
        an error, unless `on_conflict` is "left" or "right" (which one to keep). The context
        fields and code are this pipeline's."""
        if not isinstance(other, Pipeline):
            raise TypeError("Pipeline.union expects a Pipeline instance")
        if on_conflict not in ("error", "left", "right"):
            raise ValueError("on_conflict must be 'error', 'left', or 'right'")
        left, right = self.context, other.context
        merged = dict(left.variables)
        for name, var in right.variables.items():
            existing = merged.get(name)
            if existing is None:
                merged[name] = var
            elif existing is not var:
                if on_conflict == "error":
                    raise Exception("Duplicate variable name %r" % name)
                if on_conflict == "right":
                    merged[name] = var
        result = self.copy()
        result._context = None
        result._build_context(code_override=left.code, items=list(merged.values()))
        return result

    def with_context(self, *, name=None, proposal=None, run_number=None, run_data=None,
                     data=None, param_values=None):
        """A copy with these fields changed."""
        result = self.copy()
        if name is not None:
            result._name = name
        if proposal is not None:
            result.proposal = proposal
        if run_number is not None:
            result.run_number = run_number
        if run_data is not None:
            result.run_data = self._normalize_run_data(run_data)
        if data is not None:
            result.data = data
        if param_values is not None:
            result.param_values = dict(param_values)
        return result

    @staticmethod
    def _normalize_run_data(value):
        if value is None:
            return RunData.ALL
        return value if isinstance(value, RunData) else RunData(value)

    def _build_context(self, code_override=None, items=None, check=True):
        base = self._context
        variables = dict(base.variables) if base is not None else {}
        group_items = []
        for item in items or ():
            if isinstance(item, Variable):
                existing = variables.get(item.name)
                if existing is not None and existing is not item:
                    raise GroupError("Duplicate variable name %r" % item.name)
                variables[item.name] = item
            elif is_group_instance(item):
                group_items.append(item)
            else:
                raise TypeError("Pipeline items must be Variable or Group instances")
        if code_override is None:
            code_override = base.code if base is not None else ""
        self._context = build_compiled(variables, code_override, group_items=group_items,
                                       check=check)
        self._last_results = None
        return self._context

    @classmethod
    def from_context_file(cls, path, *, name=None):
        """The Pipeline of a context file, loaded as the backend loads it."""
        return cls(name=name, _context=_load(lambda loader: loader.load_context(str(path),
                                                                               main=False)))

    @classmethod
    def from_str(cls, code, *, path="<string>", name=None):
        """The Pipeline of a context given as text."""
        return cls(name=name, _context=_load(lambda loader: loader.load_source(code, path)))

    def select(self, *, variables=(), match=(), run_data=None, cluster=None):
        """A copy with only some variables (and those they depend on): exact `variables`
        names, else titles containing one of `match`; of one trigger (`run_data` "raw" or
        "proc", after promotion); cluster ones (True), others (False) or both (None)."""
        result = self.copy()
        result._context = self.context.filter(run_data=self._normalize_run_data(run_data),
                                              cluster=cluster, name_matches=match,
                                              variables=variables)
        return result

    def execute(self, *, data=None, param_values=None):
        """Runs the variables and returns their Results (also kept in `results`). The run is
        `data`, else the pipeline's `data`, else opened with extra_data."""
        if self.proposal is None or self.run_number is None:
            raise ValueError("proposal and run_number must be set")
        ctx = self.context
        run = data if data is not None else self.data
        if run is None:
            run, ctx = self._open_run(ctx)
        params = dict(self.param_values)
        params.update(param_values or {})
        self._last_results = ctx.execute(run, self.run_number, self.proposal, params,
                                         label=self.name)
        return self._last_results

    def _open_run(self, ctx):
        import logging

        import extra_data
        from _damnit_shim import xd_compat

        xd_compat.adapt()
        if any(var._data == "proc" for var in ctx.variables.values()):
            try:
                extra_data.open_run(self.proposal, self.run_number, data="proc")
            except FileNotFoundError:
                logging.getLogger("ctxrunner").warning(
                    "Proc data is unavailable, only raw variables will be executed.")
                ctx = ctx.filter(run_data=RunData.RAW)
        data = "raw" if self.run_data is RunData.RAW else "all"
        return extra_data.open_run(self.proposal, self.run_number, data=data), ctx

    @property
    def results(self):
        """The Results of the last execute(), or None."""
        return self._last_results

    @property
    def context(self):
        """The compiled context (built when first needed)."""
        if self._context is None:
            self._build_context()
        return self._context

    @property
    def vars(self):
        """{name: Variable} of the pipeline."""
        return self.context.variables

    def vars_to_dict(self, inc_transient=False):
        return self.context.vars_to_dict(inc_transient=inc_transient)


def _load(load):
    """The compiled context a loader call gives; its problem raised as the reference raises
    it (the exception of the context itself, a GroupError, a CycleError...)."""
    from _damnit_shim import context_loader

    try:
        return load(context_loader)
    except context_loader.ContextLoadError as e:
        if e.original is None:
            raise
        original = e.original
    raise original

"""The names a context file imports: `from damnit_ctx import Variable, Cell, Skip, Group,
GroupError, Pipeline, RunData` (also reachable as `damnit.context`).

This module only records what the user wrote. The loader (_damnit_shim/context_loader.py)
checks it against ctx_rules, groups.py expands Group instances into variables, and the run
executor validates and converts Cell contents, so importing a context stays cheap: standard
library only, valid on Python 3.9 and later (Groups need 3.10: keyword-only dataclass fields).
"""
import inspect
import os
import sys
from enum import Enum

__all__ = ["Cell", "Group", "GroupError", "Pipeline", "RunData", "Skip", "Variable"]


class Skip(Exception):
    """Raise in a variable to record why it has no value for this run."""


class GroupError(Exception):
    """A Group class or instance that cannot become variables."""


class RunData(Enum):
    RAW = "raw"
    PROC = "proc"
    ALL = "all"


class Variable:
    """Decorator marking a function as a variable computed for each run.

    Usable as `@Variable` and as `@Variable(title=..., ...)`. `data` is kept as written
    (None, 'raw' or 'proc', in `_data`); the context graph applies promotion.
    """

    def __init__(self, title=None, description=None, summary=None, data=None,
                 cluster=False, tags=None, transient=False, units=None):
        # A single string tag is a tag, not an iterable of one-letter tags.
        self.tags = (tags,) if isinstance(tags, str) else tags
        self.description = description
        self.summary = summary
        self._data = data
        self.cluster = cluster
        self.transient = transient
        self.units = units
        self.name = None
        self.func = None
        # Group expansion rewrites `self#` annotations of its copies here.
        self._annotation_overrides = None
        if callable(title):
            # `@Variable` without parentheses: we were given the function itself.
            self.title = None
            self(title)
        else:
            self.title = title

    def __call__(self, func):
        self.func = func
        self.name = func.__name__
        if self.title is None:
            self.title = self.name
        if self.description is None:
            self.description = inspect.getdoc(func)
        return self

    def __get__(self, instance, owner):
        # `group.var` stands for that instance's copy, whose name is only known once the
        # context has run (a group may be named after the global it is assigned to).
        if is_group_instance(instance):
            return GroupBoundVariable(instance, self)
        return self

    @property
    def data(self):
        """When the variable runs, as written: RunData.RAW unless data='proc'."""
        return RunData.RAW if self._data is None else RunData(self._data)

    def annotations(self):
        """{argument name: annotation} of the function (a group's copy: with `self#`
        resolved to `var#`)."""
        if self._annotation_overrides is not None:
            return self._annotation_overrides
        return getattr(self.func, "__annotations__", None) or {}

    def arg_dependencies(self, prefix="var#"):
        """{argument name: what follows `prefix`} for the string annotations with it."""
        return {arg: annotation[len(prefix):] for arg, annotation in self.annotations().items()
                if isinstance(annotation, str) and annotation.startswith(prefix)}

    def check(self):
        """Messages of what is wrong with this variable's name, data, tags and units."""
        from _damnit_shim import ctx_rules
        spec = {"name": self.name, "data": self._data, "tags": self.tags, "units": self.units}
        return [problem.message for problem in ctx_rules.declaration_problems(spec)]

    def evaluate(self, run_data, kwargs):
        """The function's result for one run, as a Cell with this variable's summary and
        units where the result has none (the contract's run executor checks it later)."""
        cell = self.func(run_data, **kwargs)
        if not isinstance(cell, Cell):
            cell = Cell(cell)
        if not self.transient:
            if cell.summary is None:
                cell.summary = self.summary
            if cell.units is None:
                cell.units = self.units
        return cell

    def __repr__(self):
        return "<Variable %s>" % (self.name,)


class Cell:
    """A value with display options for its table cell. Stored as given; the run
    executor checks and converts it."""

    def __init__(self, data, summary=None, summary_value=None, bold=None, background=None,
                 *, preview=None, units=None):
        self.data = data
        self.summary = summary
        self.summary_value = summary_value
        self.bold = bold
        self.background = background
        self.preview = preview
        self.units = units


# --- groups -------------------------------------------------------------------

# Fields every Group has, with their defaults; a Group class may not define them itself.
GROUP_RESERVED_FIELDS = {"name": None, "title": None, "tags": None, "sep": "/"}


def _normalize_tags(tags):
    if tags is None:
        return ()
    if isinstance(tags, str):
        return (tags,)
    return tuple(tags)


def is_group_instance(obj):
    """Whether obj is an instance of a @Group class."""
    return hasattr(type(obj), "__damnit_group__")


class GroupBoundVariable:
    """`instance.var` for a variable of a Group: names the instance's copy of the variable
    (`<group name>.<var name>`) as soon as the group has its name, and otherwise reads like
    the class's Variable. Not a Variable itself, so an alias at module level never becomes a
    second variable."""

    __damnit_group_bound__ = True

    def __init__(self, group, var_def):
        self._group = group
        self._var_def = var_def

    @property
    def name(self):
        return "%s.%s" % (self._group.name, self._var_def.name)

    def __getattr__(self, attr):
        return getattr(self._var_def, attr)

    def __repr__(self):
        return "<GroupBoundVariable %s>" % (self.name,)


def _inherited_group_tags(cls):
    for base in cls.mro()[1:]:
        config = base.__dict__.get("__damnit_group_config__")
        if config is not None:
            return config.get("tags")
    return None


def Group(_cls=None, *, tags=None):
    """Class decorator: a reusable set of variables, configured per instance.

    The class becomes a dataclass with keyword-only fields, plus `name`, `title`, `tags`
    and `sep` (separator of the group's and the variable's titles, "/" by default). Its
    @Variable methods become `<name>.<method>` for each instance; `self#field` annotations
    point at the instance's other variables or at linked groups and variables. `tags` here
    are the default of every instance, inherited by subclasses that give none.
    """
    def wrap(cls):
        if sys.version_info < (3, 10):
            raise GroupError("Groups need Python 3.10 or newer (keyword-only dataclass fields); "
                             "this is Python %d.%d" % sys.version_info[:2])
        from dataclasses import dataclass, field

        reserved = set(GROUP_RESERVED_FIELDS)
        # A class's own annotations (Python 3.10+ never returns a base class's here).
        own_annotations = dict(getattr(cls, "__annotations__", {}))
        conflicts = sorted(reserved & set(own_annotations))
        if conflicts:
            raise GroupError("Group classes cannot define reserved fields: %s"
                             % ", ".join(conflicts))
        conflicts = sorted(reserved & set(cls.__dict__))
        if conflicts:
            raise GroupError("Group classes cannot override reserved attributes: %s"
                             % ", ".join(conflicts))

        default_tags = _normalize_tags(tags if tags is not None else _inherited_group_tags(cls))
        cls.__damnit_group__ = True
        cls.__damnit_group_config__ = dict(GROUP_RESERVED_FIELDS, tags=default_tags)

        annotations = own_annotations
        annotations.update({"name": "str | None", "title": "str | None",
                            "tags": "Iterable[str] | str | None", "sep": "str"})
        cls.__annotations__ = annotations
        cls.name = field(default=None, kw_only=True)
        cls.title = field(default=None, kw_only=True)
        cls.sep = field(default="/", kw_only=True)
        cls.tags = field(default=default_tags, kw_only=True)

        own_post_init = getattr(cls, "__post_init__", None)

        def __post_init__(self):
            self.tags = _normalize_tags(self.tags)
            if self.title is None:
                self.title = self.name
            if own_post_init is not None:
                own_post_init(self)
            from _damnit_shim.pipeline import note_group_creation
            note_group_creation(self)

        cls.__post_init__ = __post_init__
        return dataclass(cls, kw_only=True)

    return wrap if _cls is None else wrap(_cls)


# --- `damnit.context` ------------------------------------------------------------

# Contexts written for today's DAMNIT import `from damnit.context import ...`. Where DAMNIT
# itself is installed, its package wins (it imports these names from this module); elsewhere
# a small stand-in next to this file provides `damnit.context`. Appended, never first.
_FALLBACK_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_damnit_shim",
                             "fallback")
if _FALLBACK_DIR not in sys.path:
    sys.path.append(_FALLBACK_DIR)


def __getattr__(name):
    # Pipeline lives with the code that compiles and runs contexts: loaded on first use.
    if name in ("Pipeline", "pipeline_scope"):
        from _damnit_shim import pipeline
        return getattr(pipeline, name)
    # DAMNIT's own modules (imported by `damnit.context` where DAMNIT is installed) take more
    # from this module than contexts do, helpers that change between versions: what we do not
    # define comes from DAMNIT's own copy of this module, so that its package keeps working.
    if not name.startswith("__"):
        own = _damnits_own_module()
        if own is not None and hasattr(own, name):
            return getattr(own, name)
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


_DAMNITS_OWN = []


def _damnits_own_module():
    """DAMNIT's own damnit_ctx.py (`damnit/ctxsupport/damnit_ctx.py` on sys.path, never a
    user's module of that name), imported under a name of its own, or None."""
    if not _DAMNITS_OWN:
        import importlib.util
        found = None
        for entry in list(sys.path):
            directory = os.path.abspath(entry or ".")
            candidate = os.path.join(directory, "damnit_ctx.py")
            if os.path.basename(directory) == "ctxsupport" and \
                    os.path.basename(os.path.dirname(directory)) == "damnit" and \
                    os.path.isfile(candidate):
                spec = importlib.util.spec_from_file_location("_damnits_own_damnit_ctx", candidate)
                found = importlib.util.module_from_spec(spec)
                sys.modules[spec.name] = found
                spec.loader.exec_module(found)
                break
        _DAMNITS_OWN.append(found)
    return _DAMNITS_OWN[0]

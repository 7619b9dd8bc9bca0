"""Offline checking of contexts with Groups and Pipelines: the module's top level, simulated.

A context's groups and pipelines are made of values the source shows (literals, other
groups, variables), so the checker can build them for real: each @Group class is rebuilt with
the real Group decorator around stand-ins of its fields and variables (functions with the same
signature and annotations, bodies left out), each instance is made with the real dataclass
__init__, Pipeline calls are the real ones, and then the real loader's code (pipeline.py,
groups.py, compiled.py) names, expands and checks them. So the check finds what the loader
finds, with the same words, for everything built that way.

What the source does not show is UNKNOWN: a value from an import, a call of anything else,
a loop. An UNKNOWN that reaches a group or pipeline (or code we cannot follow that touches
them) makes the result uncertain, and then only the errors already certain (an exception
raised while the module runs, in source order) are reported.
"""
import ast
import dataclasses

import damnit_ctx
from _damnit_shim.compiled import CompiledContext
from _damnit_shim.ctx_rules import UNKNOWN
from _damnit_shim.pipeline import Pipeline, collect_context, pipeline_scope
from _damnit_shim.static_stand_ins import ModuleStopped, StandIns, is_model, is_model_name
from _damnit_shim.static_variables import CONTEXT_MODULES
from damnit_ctx import Variable, is_group_instance
# Pipeline methods a context may call at load time; others (execute, from_str...) run or load
# code we do not have.
PIPELINE_METHODS = frozenset(["add", "union", "select", "with_context", "copy", "default",
                              "set_default"])
MAX_RANGE = 1000


class Simulation(StandIns):
    """Runs the top level of a module that uses Group or Pipeline, or that changes objects after
    making them (SourceFacts.simulate)."""

    def __init__(self, tree, reader, target, column_of):
        self.tree = tree
        self.reader = reader
        self.target = target
        self.column_of = column_of  # (line, byte offset) -> 1-based character column
        self.env = {}  # the module's globals, in binding order
        self.sites = {}  # id(group) -> (group, line, column) of the call that made it
        self.positions = {}  # id(code of a stand-in function) -> (line, column) of its def
        self.unknown_attrs = {}  # id(stand-in or group) -> names of its unknown attributes
        self.complete = True  # every variable of the module is seen
        self.uncertain = False  # code we cannot follow touched a group or pipeline
        self.warnings = []  # (line, column, message) of classes that look like groups but are not
        self.placeholders = 0
        self.read_callees = set()  # the `Variable` references read as decorators

    # --- running ------------------------------------------------------------

    def run(self):
        """(compiled context or None, diagnostics as (kind, message, line, column, variable))."""
        with pipeline_scope() as state:
            try:
                for node in self.tree.body:
                    self.statement(node)
            except ModuleStopped as stop:
                return None, [("exception", describe(stop.error), stop.line, stop.column, None)]
            # Variable used other than as the decorators read means variables we cannot see.
            facts = self.reader.facts
            if facts.hidden_imports or any(id(ref) not in self.read_callees
                                           for ref in facts.variable_refs):
                self.complete = False
            if self.uncertain:
                return None, []
            try:
                collected = collect_context(self.env, state, "")
            except Exception as e:
                line, column = self.location(getattr(e, "damnit_where", None))
                return None, [("context", describe(e), line, column, None)]
        for var in collected.variables.values():
            self.mark_unknowns(var)
        return CompiledContext(collected.variables, position=self.position), []

    def position(self, func):
        code = getattr(func, "__code__", None)
        return self.positions.get(id(code), (None, None))

    def location(self, where):
        if is_group_instance(where) and id(where) in self.sites:
            _, line, column = self.sites[id(where)]
            return line, column
        if isinstance(where, Variable):
            return self.position(where.func)
        return None, None

    def mark_unknowns(self, var):
        """What a stand-in did not know stays unknown in the variables made from it."""
        func = getattr(var.func, "__func__", var.func)
        group = getattr(var.func, "__self__", None)
        unknown = set(self.unknown_attrs.get(id(func), ()))
        if group is not None:
            unknown |= {"title" if a == "sep" else a for a in self.unknown_attrs.get(id(group), ())}
        if "title" in unknown:
            var.title = UNKNOWN
        if "tags" in unknown:
            var.tags = UNKNOWN

    def stop(self, error, node):
        raise ModuleStopped(error, node.lineno, self.column(node))

    def column(self, node):
        return self.column_of(node.lineno, node.col_offset)

    # --- statements -----------------------------------------------------------

    def statement(self, node):
        kind = type(node)
        if kind in (ast.Import, ast.ImportFrom):
            self.import_(node)
        elif kind in (ast.FunctionDef, ast.AsyncFunctionDef):
            self.bind(node.name, self.function(node))
        elif kind is ast.ClassDef:
            self.bind(node.name, self.class_(node))
        elif kind is ast.Assign:
            value = self.evaluate(node.value)
            for target in node.targets:
                self.assign(target, value)
        elif kind is ast.AnnAssign and node.value is not None:
            self.read_type_hint(node.annotation)
            self.assign(node.target, self.evaluate(node.value))
        elif kind is ast.Expr:
            self.evaluate(node.value)
        elif kind in (ast.Pass, ast.AnnAssign):
            pass
        else:
            self.unfollowed(node)

    def unfollowed(self, node):
        """A statement we do not run: the names it binds become UNKNOWN."""
        if self.touches_model(node):
            self.uncertain = True
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name) and not isinstance(sub.ctx, ast.Load):
                self.bind(sub.id, UNKNOWN)
            elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.bind(sub.name, UNKNOWN)
            elif isinstance(sub, (ast.Import, ast.ImportFrom)):
                for alias in sub.names:
                    self.bind((alias.asname or alias.name).split(".")[0], UNKNOWN)

    def touches_model(self, node):
        """Whether code names a variable, group, pipeline or the API that makes them."""
        return any(isinstance(sub, ast.Name) and is_model_name(self.env.get(sub.id))
                   for sub in ast.walk(node))

    def bind(self, name, value):
        if isinstance(value, Variable) and value.func is None:
            value = UNKNOWN
        if value is UNKNOWN and is_model_name(self.env.get(name)):
            # A variable, group or pipeline rebound to something unknown may have been kept.
            self.complete = False
        self.env[name] = value

    def import_(self, node):
        for alias in node.names:
            name = alias.asname or alias.name
            if isinstance(node, ast.ImportFrom) and node.module in CONTEXT_MODULES:
                self.bind(name, getattr(damnit_ctx, alias.name, UNKNOWN))
            elif isinstance(node, ast.ImportFrom) and node.module == "dataclasses" \
                    and alias.name == "field":
                self.bind(name, dataclasses.field)
            elif isinstance(node, ast.Import) and alias.name == "damnit_ctx":
                self.bind(name, damnit_ctx)
            elif alias.name != "*":
                self.bind(name.split(".")[0], UNKNOWN)

    def assign(self, target, value):
        if isinstance(target, ast.Name):
            self.bind(target.id, value)
        elif isinstance(target, ast.Attribute):
            obj = self.evaluate(target.value)
            if not is_model(obj):
                return
            if value is UNKNOWN:
                self.uncertain = True
                return
            try:
                setattr(obj, target.attr, value)
            except Exception as e:
                self.stop(e, target)
        elif isinstance(target, (ast.Tuple, ast.List)):
            values = value if isinstance(value, (tuple, list)) else None
            if values is not None and len(values) == len(target.elts):
                for sub, item in zip(target.elts, values):
                    self.assign(sub, item)
            else:
                for sub in target.elts:
                    self.assign(sub, UNKNOWN)
        elif is_model(value) or self.touches_model(target):
            self.uncertain = True

    # --- expressions ----------------------------------------------------------

    def evaluate(self, node):
        """The value of an expression, made with real objects where the source shows them;
        UNKNOWN otherwise. A real call that raises stops the module."""
        kind = type(node)
        if kind is ast.Constant:
            return node.value
        if kind is ast.Name:
            return self.env.get(node.id, UNKNOWN)
        if kind in (ast.List, ast.Tuple, ast.Set):
            items = [self.evaluate(e) for e in node.elts]
            if any(isinstance(e, ast.Starred) for e in node.elts) or UNKNOWN in items:
                return self.unknown(node)
            return {ast.List: list, ast.Tuple: tuple, ast.Set: set}[kind](items)
        if kind is ast.Dict:
            keys = [self.evaluate(k) if k is not None else UNKNOWN for k in node.keys]
            values = [self.evaluate(v) for v in node.values]
            if UNKNOWN in keys or UNKNOWN in values:
                return self.unknown(node)
            return dict(zip(keys, values))
        if kind is ast.JoinedStr:
            return self.fstring(node)
        if kind is ast.Attribute:
            return self.attribute(node)
        if kind is ast.Call:
            return self.call(node)
        if kind is ast.ListComp:
            return self.comprehension(node)
        literal = self.reader.literal(node)
        return literal if literal is not UNKNOWN else self.unknown(node)

    def unknown(self, node):
        if self.touches_model(node):
            self.uncertain = True
        return UNKNOWN

    def fstring(self, node):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
                continue
            inner = self.evaluate(value.value)
            if not isinstance(inner, (str, int, float)) or value.conversion != -1 or \
                    value.format_spec is not None:
                return self.unknown(node)
            parts.append(str(inner))
        return "".join(parts)

    def comprehension(self, node):
        """`[expr for name in range(...)]`, the one comprehension a context builds groups
        with; others are UNKNOWN."""
        if len(node.generators) != 1:
            return self.unknown(node)
        generator = node.generators[0]
        bounds = None
        if isinstance(generator.iter, ast.Call) and isinstance(generator.iter.func, ast.Name) \
                and generator.iter.func.id == "range" and generator.iter.func.id not in self.env \
                and not generator.iter.keywords:
            bounds = [self.evaluate(a) for a in generator.iter.args]
        if not isinstance(generator.target, ast.Name) or generator.ifs or generator.is_async \
                or bounds is None or not 1 <= len(bounds) <= 3 \
                or not all(type(b) is int for b in bounds) or len(range(*bounds)) > MAX_RANGE:
            return self.unknown(node)
        name = generator.target.id
        saved = self.env.get(name, None), name in self.env
        items = []
        for i in range(*bounds):
            self.env[name] = i
            items.append(self.evaluate(node.elt))
        if saved[1]:
            self.env[name] = saved[0]
        else:
            del self.env[name]
        return UNKNOWN if UNKNOWN in items else items

    def attribute(self, node):
        obj = self.evaluate(node.value)
        if obj is damnit_ctx or obj is dataclasses or is_model(obj) or obj is Pipeline:
            try:
                value = getattr(obj, node.attr)
            except AttributeError as e:
                self.stop(e, node)
            if callable(value) and isinstance(obj, Pipeline) or obj is Pipeline:
                if node.attr not in PIPELINE_METHODS:
                    self.uncertain = True
                    return UNKNOWN
            return value
        return self.unknown(node) if obj is UNKNOWN else UNKNOWN

    def call(self, node):
        func = self.evaluate(node.func)
        args = [self.evaluate(a) for a in node.args]
        kwargs = {k.arg: self.evaluate(k.value) for k in node.keywords if k.arg is not None}
        unpacked = any(isinstance(a, ast.Starred) for a in node.args) or \
            any(k.arg is None for k in node.keywords)
        if func is UNKNOWN or not self.callable_here(func):
            return self.unknown(node)
        if unpacked:
            self.uncertain = True
            return UNKNOWN
        if isinstance(func, type) and hasattr(func, "__damnit_group__"):
            return self.instantiate(func, args, kwargs, node)
        if func is dataclasses.field:
            # A field whose default is unknown: its instances' value is.
            if kwargs.get("default", None) is UNKNOWN:
                kwargs["default"] = UNKNOWN
            if kwargs.get("default_factory", None) is UNKNOWN:
                kwargs["default_factory"] = lambda: UNKNOWN
        if UNKNOWN in args or any(v is UNKNOWN for k, v in kwargs.items()
                                  if not (func is dataclasses.field and k == "default")):
            self.uncertain = True
            return UNKNOWN
        try:
            return func(*args, **kwargs)
        except Exception as e:
            self.stop(e, node)

    def callable_here(self, func):
        """Whether calling `func` at load time can be simulated."""
        if func is dataclasses.field or func is Pipeline or func is damnit_ctx.Group:
            return True
        if isinstance(func, type) and hasattr(func, "__damnit_group__"):
            return True
        owner = getattr(func, "__self__", None)
        return (owner is Pipeline or isinstance(owner, Pipeline)) and \
            func.__name__ in PIPELINE_METHODS

    def instantiate(self, cls, args, kwargs, node):
        """A group instance, made by the real dataclass __init__."""
        if kwargs.get("name", None) is UNKNOWN or UNKNOWN in args:
            self.complete = False
            return UNKNOWN
        unknown = {k for k in ("title", "sep", "tags") if kwargs.get(k, None) is UNKNOWN}
        known = {k: v for k, v in kwargs.items() if k not in unknown}
        if unknown & {"title", "sep"}:
            known["title"] = self.placeholder_title()
        if any(v is UNKNOWN for v in known.values()):
            self.complete = False  # an unknown field may hold a group whose variables we miss
        try:
            group = cls(*args, **known)
        except Exception as e:
            self.stop(strip_suggestion(e, self.target), node)
        self.unknown_attrs[id(group)] = unknown
        self.sites[id(group)] = (group, node.lineno, self.column(node))
        return group


def describe(error):
    text = str(error)
    return "%s: %s" % (type(error).__name__, text) if text else type(error).__name__


def strip_suggestion(error, target):
    """Python 3.13 and later add `. Did you mean 'x'?` to some TypeErrors; the target Python
    of an older version does not."""
    text = str(error)
    if target < (3, 13) and isinstance(error, TypeError) and ". Did you mean " in text:
        return TypeError(text[:text.index(". Did you mean ")])
    return error

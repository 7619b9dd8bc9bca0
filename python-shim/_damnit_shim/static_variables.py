"""What the source of a context says about its variables: the module's imports of DAMNIT's
API, and each top-level `@Variable` as a ctx_rules spec (see static_reader.py, which uses
this, and static_groups.py, which follows groups and pipelines).

Standard library only, valid on Python 3.9 to 3.14.
"""
import ast
import fnmatch
import re

from _damnit_shim.ctx_rules import UNKNOWN

# Variable.__init__'s parameters, in order, and their defaults.
VARIABLE_PARAMETERS = ("title", "description", "summary", "data", "cluster", "tags",
                       "transient", "units")
VARIABLE_DEFAULTS = {"title": None, "description": None, "summary": None, "data": None,
                     "cluster": False, "tags": None, "transient": False, "units": None}
# Where contexts import DAMNIT's API from: the backend's module, or DAMNIT's own package.
CONTEXT_MODULES = ("damnit_ctx", "damnit.context")
# Names of the API that make groups and pipelines, whose checking needs static_groups.py.
GROUP_API = frozenset(["Group", "Pipeline"])

# pyflakes parses a string annotation such as "var#x" as the expression `var`: any
# annotation of the form `kind#...` (var#, self#, param#, meta#, an unknown one...).
ANNOTATION_KIND = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)#")



def diagnostic(severity, kind, message, line, column, variable=None, code=None):
    return {"severity": severity, "kind": kind, "message": message, "line": line,
            "column": column, "variable": variable, "code": code}


def char_column(lines, line, byte_offset):
    """1-based character column of an AST node's UTF-8 byte offset."""
    if not 0 < line <= len(lines):
        return byte_offset + 1
    prefix = lines[line - 1].encode("utf-8")[:byte_offset]
    return len(prefix.decode("utf-8", errors="replace")) + 1


class SourceFacts:
    """What one walk over the whole tree finds (a walk costs as much as parsing)."""

    def __init__(self, tree):
        # Grammar of Python 3.11 the parser's feature_version lets through: (node, what, minor).
        self.newer_syntax = []
        # Names bound to damnit_ctx.Variable and to the damnit_ctx module, by top-level imports.
        self.variable_names, self.module_names = {"Variable"}, {"damnit_ctx"}
        # Whether the module makes groups or pipelines, or changes objects after making them
        # (`energy.name = ...`): static_groups.py runs its top level then.
        self.simulate = False
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.module in CONTEXT_MODULES:
                self.variable_names.update(a.asname or a.name for a in node.names
                                           if a.name == "Variable")
                self.simulate = self.simulate or any(a.name in GROUP_API for a in node.names)
            elif isinstance(node, ast.Import):
                self.module_names.update(a.asname or a.name for a in node.names
                                         if a.name == "damnit_ctx")
            elif isinstance(node, ast.ClassDef) and any(
                    isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))
                    and item.decorator_list for item in node.body):
                # Perhaps variables of a class that is not a Group, which check warns about.
                self.simulate = True
            elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Attribute)
                                                      for t in node.targets):
                self.simulate = True
        self.stores = {}  # how often each name is bound or deleted, anywhere
        self.variable_refs = []  # every expression naming Variable
        self.hidden_imports = False  # star imports, or Variable imported under other names
        self.fstrings = []
        # (line, column) -> kind of each string annotation such as "var#x"
        self.annotation_positions = {}
        for node in all_nodes(tree):
            kind = type(node)
            if kind is ast.Name:
                if type(node.ctx) is ast.Load:
                    if node.id in self.variable_names:
                        self.variable_refs.append(node)
                else:
                    self.stores[node.id] = self.stores.get(node.id, 0) + 1
            elif kind is ast.Attribute:
                if node.attr == "Variable" and type(node.value) is ast.Name and \
                        node.value.id in self.module_names:
                    self.variable_refs.append(node)
            elif kind is ast.arg:
                annotation = node.annotation
                kind_match = ANNOTATION_KIND.match(annotation.value) \
                    if type(annotation) is ast.Constant and isinstance(annotation.value, str) \
                    else None
                if kind_match:
                    self.annotation_positions[(annotation.lineno, annotation.col_offset)] = \
                        kind_match.group(1)
                elif type(annotation) is ast.Starred:
                    self.newer_syntax.append((annotation, "a starred annotation", 11))
            elif kind is ast.Subscript:
                if type(node.slice) is ast.Tuple and any(
                        type(e) is ast.Starred for e in node.slice.elts):
                    self.newer_syntax.append((node.slice, "a starred expression in a subscript",
                                              11))
            elif kind is ast.JoinedStr:
                self.fstrings.append(node)
            elif kind is ast.ImportFrom:
                for alias in node.names:
                    if alias.name == "*" and node.module not in CONTEXT_MODULES:
                        self.hidden_imports = True
                    elif node.module in CONTEXT_MODULES and alias.name == "Variable" and \
                            (alias.asname or alias.name) not in self.variable_names:
                        self.hidden_imports = True
            elif kind is ast.Import:
                if any(a.name == "damnit_ctx" and (a.asname or a.name) not in self.module_names
                       for a in node.names):
                    self.hidden_imports = True


def all_nodes(tree):
    """Every node of the tree in ast.walk's order, in a list: about twice as fast as ast.walk,
    whose generators cost more than the nodes' own visits."""
    nodes = [tree]
    for node in nodes:  # the list grows while it is read: breadth first, as ast.walk
        for field in node._fields:
            value = getattr(node, field, None)
            if type(value) is list:
                nodes.extend([item for item in value if isinstance(item, ast.AST)])
            elif isinstance(value, ast.AST):
                nodes.append(value)
    return nodes


class ModuleReader:
    """What the AST says about the module's variables, as ctx_rules specs.

    Only variables defined at the top level with @Variable as their outermost
    decorator are seen. When Variable is used any other way (called directly,
    in a loop, inside a class or an `if`), the set of variables is incomplete
    and checks that need all of them (missing dependencies) are skipped.
    """

    def __init__(self, tree, lines, facts):
        self.lines = lines
        self.facts = facts
        self.call_problems = []
        self.future_annotations = any(
            isinstance(node, ast.ImportFrom) and node.module == "__future__"
            and any(a.name == "annotations" for a in node.names) for node in tree.body)
        self.variable_names, self.module_names = facts.variable_names, facts.module_names
        self.constants = self._module_constants(tree)
        self.specs = self._read_variables(tree)

    def _module_constants(self, tree):
        """Top-level names bound exactly once in the whole module, to a literal."""
        constants = {}
        for node in tree.body:
            if isinstance(node, ast.Assign):
                targets, value = node.targets, node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                targets, value = [node.target], node.value
            else:
                continue
            for target in targets:
                if isinstance(target, ast.Name) and self.facts.stores.get(target.id) == 1:
                    constants[target.id] = self.literal(value, constants)
        return {name: value for name, value in constants.items() if value is not UNKNOWN}

    def is_variable_ref(self, node):
        if isinstance(node, ast.Name):
            return node.id in self.variable_names
        return (isinstance(node, ast.Attribute) and node.attr == "Variable"
                and isinstance(node.value, ast.Name) and node.value.id in self.module_names)

    def literal(self, node, constants=None):
        """The value of a literal expression (or a module constant), else UNKNOWN."""
        constants = self.constants if constants is None else constants
        if isinstance(node, ast.Name) and node.id in constants:
            return constants[node.id]
        if isinstance(node, ast.JoinedStr) and all(isinstance(v, ast.Constant)
                                                   for v in node.values):
            return "".join(str(v.value) for v in node.values)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = self.literal(node.left, constants), self.literal(node.right, constants)
            if isinstance(left, str) and isinstance(right, str):
                return left + right
            return UNKNOWN
        try:
            return ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return UNKNOWN

    def _read_variables(self, tree):
        # Module globals in insertion order: rebinding a name keeps its place, as in a dict.
        bindings = {}
        read_callees = set()
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                spec = None
                if node.decorator_list and self.is_variable_ref(callee(node.decorator_list[0])):
                    read_callees.add(id(callee(node.decorator_list[0])))
                    spec = self._spec(node, node.decorator_list[0])
                bindings[node.name] = spec
            else:
                for name in _bound_names(node):
                    bindings[name] = None
        # Variable used other than as the decorators read means variables we cannot see.
        self.complete = not self.facts.hidden_imports and all(
            id(ref) in read_callees for ref in self.facts.variable_refs)
        specs, seen = [], set()
        for spec in bindings.values():
            if spec is not None and spec["name"] not in seen:
                seen.add(spec["name"])
                specs.append(spec)
        return specs

    def _spec(self, func, decorator):
        values = dict(VARIABLE_DEFAULTS)
        if isinstance(decorator, ast.Call):
            values.update(self._decorator_arguments(func, decorator))
        return {
            "name": func.name,
            "title": values["title"],
            "data": values["data"],
            "cluster": values["cluster"],
            "tags": values["tags"],
            "units": values["units"],
            "summary": values["summary"],
            "transient": values["transient"],
            "line": func.lineno,
            "column": char_column(self.lines, func.lineno, func.col_offset),
            "params": self._params(func.args),
        }

    def _decorator_arguments(self, func, call):
        """Keyword values of `@Variable(...)`; problems Python would raise calling it."""
        given = {}
        unpacked = any(isinstance(a, ast.Starred) for a in call.args) or any(
            k.arg is None for k in call.keywords)
        positional = [a for a in call.args if not isinstance(a, ast.Starred)]
        if len(positional) > len(VARIABLE_PARAMETERS) and not unpacked:
            self._call_problem(call, func, "Variable() takes from 1 to %d positional arguments "
                               "but %d were given" % (len(VARIABLE_PARAMETERS) + 1,
                                                      len(positional) + 1))
        if not any(isinstance(a, ast.Starred) for a in call.args):
            for name, arg in zip(VARIABLE_PARAMETERS, positional):
                given[name] = self.literal(arg)
        for keyword in call.keywords:
            if keyword.arg is None:
                continue
            if keyword.arg not in VARIABLE_PARAMETERS:
                self._call_problem(call, func, "Variable() got an unexpected keyword argument %r"
                                   % keyword.arg)
            elif keyword.arg in given:
                self._call_problem(call, func, "Variable() got multiple values for argument %r"
                                   % keyword.arg)
            else:
                given[keyword.arg] = self.literal(keyword.value)
        if unpacked:
            for name in VARIABLE_PARAMETERS:
                given.setdefault(name, UNKNOWN)
        return given

    def _call_problem(self, call, func, message):
        # Python raises TypeError at the decorator call, while the module is executed.
        self.call_problems.append(diagnostic(
            "error", "exception", "TypeError: " + message, call.lineno,
            char_column(self.lines, call.lineno, call.col_offset), func.name))

    def _annotation(self, node):
        """The annotation as the real function's __annotations__ holds it, if a string."""
        if node is None:
            return None
        if self.future_annotations:
            return ast.unparse(node)  # PEP 563 keeps every annotation as its source text.
        value = self.literal(node)
        if value is UNKNOWN:
            return UNKNOWN
        return value if isinstance(value, str) else None

    def _params(self, args):
        positional = list(args.posonlyargs) + list(args.args)
        defaults_from = len(positional) - len(args.defaults)
        params = [{"name": a.arg, "annotation": self._annotation(a.annotation),
                   "has_default": i >= defaults_from} for i, a in enumerate(positional)][1:]
        if args.vararg is not None:
            params.append({"name": args.vararg.arg,
                           "annotation": self._annotation(args.vararg.annotation),
                           "has_default": False})
        for arg, default in zip(args.kwonlyargs, args.kw_defaults):
            params.append({"name": arg.arg, "annotation": self._annotation(arg.annotation),
                           "has_default": default is not None})
        if args.kwarg is not None:
            params.append({"name": args.kwarg.arg,
                           "annotation": self._annotation(args.kwarg.annotation),
                           "has_default": False})
        return params


def callee(decorator):
    return decorator.func if isinstance(decorator, ast.Call) else decorator


def _bound_names(node):
    """Top-level names a statement other than a def binds or unbinds."""
    if isinstance(node, ast.ClassDef):
        return [node.name]
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return [(a.asname or a.name).split(".")[0] for a in node.names if a.name != "*"]
    names = []
    targets = []
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
        targets = [node.target]
    elif isinstance(node, ast.Delete):
        targets = node.targets
    for target in targets:
        names.extend(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
    return names


def without_unresolved_dependencies(spec, specs):
    """A spec without the `var#` parameters that match no variable we can see: with
    variables we cannot see, such a dependency may well exist."""
    names = [s["name"] for s in specs]
    params = [p for p in spec["params"]
              if not (isinstance(p["annotation"], str) and p["annotation"].startswith("var#")
                      and not fnmatch.filter(names, p["annotation"][len("var#"):]))]
    return dict(spec, params=params)



"""Check a context file from its source alone, without running it.

`amore-proto check` runs this inside Pyodide, where neither the user's
packages nor their interpreter exist. It finds what the real loader
(context_loader.py) would reject and can be seen in the source: syntax errors
for the target Python version, and the variable rules of ctx_rules.py applied
to what the AST says about each `@Variable`. pyflakes warnings come last, when
pyflakes is importable.

    check_source(data, filename, target=(3, 11), use_pyflakes=True) -> dict

returns {"diagnostics": [...], "variables": [{name, title, line}], "complete"}.
A diagnostic is {severity: error|warning, kind, message, line, column, variable,
code}; lines and columns are 1-based, columns count characters.

Standard library only, valid on Python 3.9 to 3.14.
"""
import ast
import fnmatch
import io
import json
import tokenize
import warnings

from _damnit_shim import ctx_rules
from _damnit_shim.ctx_rules import UNKNOWN

# Variable.__init__'s parameters, in order, and their defaults.
VARIABLE_PARAMETERS = ("title", "description", "summary", "data", "cluster", "tags",
                       "transient", "units")
VARIABLE_DEFAULTS = {"title": None, "description": None, "summary": None, "data": None,
                     "cluster": False, "tags": None, "transient": False, "units": None}
CONTEXT_MODULE = "damnit_ctx"

# pyflakes parses a string annotation such as "var#x" as the expression `var`.
ANNOTATION_PREFIXES = ("var#", "meta#", "mymdc#", "self#")
ANNOTATION_ROOT_NAMES = frozenset(p[:-1] for p in ANNOTATION_PREFIXES)


def diagnostic(severity, kind, message, line, column, variable=None, code=None):
    return {"severity": severity, "kind": kind, "message": message, "line": line,
            "column": column, "variable": variable, "code": code}


def check_source(data, filename, target=(3, 11), use_pyflakes=True):
    """All diagnostics of one context file's bytes, for Python `target`."""
    text, problem = decode_source(data)
    if problem is not None:
        return {"diagnostics": [problem], "variables": [], "complete": False}
    tree, diagnostics = parse_source(text, filename, tuple(target))
    if tree is None:
        return {"diagnostics": diagnostics, "variables": [], "complete": False}
    lines = text.splitlines()
    facts = SourceFacts(tree)
    for node, what, minor in facts.newer_syntax:
        if tuple(target) < (3, minor):
            diagnostics.append(diagnostic(
                "error", "syntax", "%s needs Python 3.%d or newer (checking for Python %d.%d)"
                % (what[0].upper() + what[1:], minor, target[0], target[1]), node.lineno,
                char_column(lines, node.lineno, node.col_offset)))
    if tuple(target) < (3, 12):
        diagnostics.extend(fstring_problems(text, lines, facts.fstrings, tuple(target)))
        if any(d["severity"] == "error" for d in diagnostics):
            return {"diagnostics": diagnostics, "variables": [], "complete": False}

    reader = ModuleReader(tree, lines, facts)
    if reader.call_problems:
        # Executing the module stops at the first failing decorator call: the real loader
        # reports that exception and never gets to the variable rules.
        diagnostics.append(reader.call_problems[0])
    else:
        diagnostics.extend(reader.rule_problems())
    if use_pyflakes:
        diagnostics.extend(pyflakes_warnings(tree, filename, lines, facts.annotation_positions))
    diagnostics.sort(key=lambda d: (d["line"] or 0, d["column"] or 0))
    variables = [{"name": s["name"], "title": ctx_rules.title_of(s) if ctx_rules.known(s["title"])
                  else None, "line": s["line"]} for s in reader.specs]
    return {"diagnostics": diagnostics, "variables": variables, "complete": reader.complete}


def check_source_json(data, filename, minor, use_pyflakes):
    """The entry point the TypeScript side calls: bytes in, JSON text out. From Pyodide,
    `data` is a JavaScript Uint8Array."""
    raw = data.to_bytes() if hasattr(data, "to_bytes") else bytes(data)
    return json.dumps(check_source(raw, filename, (3, int(minor)), bool(use_pyflakes)))


def decode_source(data):
    """The source text, or an encoding problem. UTF-8 only (a BOM is allowed), as the
    real loader reads it."""
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as e:
        line_start = data.rfind(b"\n", 0, e.start) + 1
        column = len(data[line_start:e.start].decode("utf-8", errors="replace")) + 1
        return None, diagnostic(
            "error", "encoding",
            "invalid UTF-8 byte 0x%02x: save the file as UTF-8" % data[e.start],
            data.count(b"\n", 0, e.start) + 1, column)


def parse_source(text, filename, target):
    """(tree, warnings) or (None, [syntax error]) for the grammar of Python `target`."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            tree = ast.parse(text, filename, feature_version=target)
            # The compiler finds what the parser lets through ('return' outside a function...).
            # From the text: twice as fast as from the tree, and the grammar is checked above.
            compile(text, filename, "exec", dont_inherit=True)
        except SyntaxError as e:
            return None, [diagnostic("error", "syntax", e.msg, e.lineno or 1, e.offset or 1)]
        except ValueError as e:
            return None, [diagnostic("error", "syntax", str(e), 1, 1)]
        except (RecursionError, MemoryError) as e:
            # Python fails the same way importing it: the file is too deeply nested to compile.
            return None, [diagnostic("error", "syntax", "%s: %s" % (type(e).__name__, e), 1, 1)]
    found, seen = [], set()
    for w in caught:
        # The parser warns as the target version would, the compiler as 3.14 does: keep one.
        key = (w.lineno, str(w.message))
        if issubclass(w.category, (SyntaxWarning, DeprecationWarning)) and w.lineno and \
                key not in seen:
            seen.add(key)
            found.append(diagnostic("warning", "syntax-warning", str(w.message), w.lineno, 1,
                                    code=w.category.__name__))
    return tree, found


def char_column(lines, line, byte_offset):
    """1-based character column of an AST node's UTF-8 byte offset."""
    if not 0 < line <= len(lines):
        return byte_offset + 1
    prefix = lines[line - 1].encode("utf-8")[:byte_offset]
    return len(prefix.decode("utf-8", errors="replace")) + 1


def fstring_problems(text, lines, fstrings, target):
    """f-string syntax that only Python 3.12 accepts (PEP 701), which the parser's
    feature_version does not reject: the enclosing quote reused inside a replacement
    field, and backslashes or comments in a replacement field."""
    fstring_start = getattr(tokenize, "FSTRING_START", None)
    if fstring_start is None:
        return []  # Before 3.12 the tokenizer itself enforces these rules.
    # Tokenizing is slow in Python: only when some f-string could break one of the rules.
    if not any(_fstring_suspect(node, lines) for node in fstrings):
        return []
    needs = "needs Python 3.12 or newer (checking for Python %d.%d)" % target
    problems = []
    open_quotes = []  # quote of each f-string we are inside, innermost last

    def report(token, what):
        line, col = token.start
        problems.append(diagnostic("error", "syntax", "f-string: %s %s" % (what, needs),
                                   line, col + 1))

    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if open_quotes and token.type in (tokenize.STRING, fstring_start):
                quote = string_quote(token.string)
                if any(clashes(outer, quote) for outer in open_quotes):
                    report(token, "reusing the quote %s inside a replacement field" % quote)
                elif token.type == tokenize.STRING and "\\" in token.string:
                    report(token, "a backslash inside a replacement field")
            elif open_quotes and token.type == tokenize.COMMENT:
                report(token, "a comment inside a replacement field")
            if token.type == fstring_start:
                open_quotes.append(string_quote(token.string))
            elif token.type == tokenize.FSTRING_END and open_quotes:
                open_quotes.pop()
    except (tokenize.TokenError, SyntaxError):
        return problems
    return problems


def _fstring_suspect(node, lines):
    """Whether an f-string's text has a backslash, a '#', or its quote more than twice."""
    first, last = node.lineno - 1, node.end_lineno - 1
    if not 0 <= first <= last < len(lines):
        return True
    if first == last:
        segment = lines[first].encode("utf-8")[node.col_offset:node.end_col_offset]
    else:
        segment = b"\n".join([lines[first].encode("utf-8")[node.col_offset:]]
                             + [line.encode("utf-8") for line in lines[first + 1:last]]
                             + [lines[last].encode("utf-8")[:node.end_col_offset]])
    text = segment.decode("utf-8", errors="replace")
    quote = string_quote(text)
    return "\\" in text or "#" in text or not quote or text.count(quote) > 2


def string_quote(token_text):
    body = token_text.lstrip("rRbBfFuUtT")
    return body[:3] if body[:3] in ('"""', "'''") else body[:1]


def clashes(outer, inner):
    # Before 3.12 a replacement field ends where the enclosing quote appears.
    return inner == outer if len(outer) == 3 else inner[0] == outer


class SourceFacts:
    """What one walk over the whole tree finds (a walk costs as much as parsing)."""

    def __init__(self, tree):
        # Grammar of Python 3.11 the parser's feature_version lets through: (node, what, minor).
        self.newer_syntax = []
        # Names bound to damnit_ctx.Variable and to the damnit_ctx module, by top-level imports.
        self.variable_names, self.module_names = {"Variable"}, {CONTEXT_MODULE}
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.module == CONTEXT_MODULE:
                self.variable_names.update(a.asname or a.name for a in node.names
                                           if a.name == "Variable")
            elif isinstance(node, ast.Import):
                self.module_names.update(a.asname or a.name for a in node.names
                                         if a.name == CONTEXT_MODULE)
        self.stores = {}  # how often each name is bound or deleted, anywhere
        self.variable_refs = []  # every expression naming Variable
        self.hidden_imports = False  # star imports, or Variable imported under other names
        self.fstrings = []
        self.annotation_positions = set()  # string annotations such as "var#x"
        for node in ast.walk(tree):
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
                if type(annotation) is ast.Constant and isinstance(annotation.value, str) and \
                        annotation.value.startswith(ANNOTATION_PREFIXES):
                    self.annotation_positions.add((annotation.lineno, annotation.col_offset))
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
                    if alias.name == "*" and node.module != CONTEXT_MODULE:
                        self.hidden_imports = True
                    elif node.module == CONTEXT_MODULE and alias.name == "Variable" and \
                            (alias.asname or alias.name) not in self.variable_names:
                        self.hidden_imports = True
            elif kind is ast.Import:
                if any(a.name == CONTEXT_MODULE and (a.asname or a.name) not in self.module_names
                       for a in node.names):
                    self.hidden_imports = True


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
        self.specs, self.columns = self._read_variables(tree)

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
        columns = {}
        read_callees = set()
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                spec = None
                if node.decorator_list and self.is_variable_ref(_callee(node.decorator_list[0])):
                    read_callees.add(id(_callee(node.decorator_list[0])))
                    spec = self._spec(node, node.decorator_list[0])
                    columns[node.name] = char_column(self.lines, node.lineno, node.col_offset)
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
        return specs, columns

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

    def rule_problems(self):
        """ctx_rules' problems as diagnostics at each variable's `def`."""
        specs = self.specs
        if not self.complete:
            specs = [_without_unresolved_dependencies(s, specs) for s in specs]
        problems, _ = ctx_rules.check_context(specs)
        return [diagnostic("error", "context", p.message, p.line, self.columns.get(p.name),
                           p.name, code=p.scope) for p in problems]


def _callee(decorator):
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


def _without_unresolved_dependencies(spec, specs):
    """A spec without the `var#` parameters that match no variable we can see: with
    variables we cannot see, such a dependency may well exist."""
    names = [s["name"] for s in specs]
    params = [p for p in spec["params"]
              if not (isinstance(p["annotation"], str) and p["annotation"].startswith("var#")
                      and not fnmatch.filter(names, p["annotation"][len("var#"):]))]
    return dict(spec, params=params)


def pyflakes_warnings(tree, filename, lines, annotation_positions):
    """pyflakes' messages, less the undefined names it reads into annotations like "var#x"
    (it reports them at the annotation's position)."""
    try:
        from pyflakes.checker import Checker
        from pyflakes.messages import UndefinedName
    except ImportError:
        return []
    found = []
    for message in Checker(tree, filename=filename).messages:
        if isinstance(message, UndefinedName) and message.message_args[0] in \
                ANNOTATION_ROOT_NAMES and (message.lineno, message.col) in annotation_positions:
            continue
        found.append(diagnostic(
            "warning", "pyflakes", message.message % message.message_args, message.lineno,
            char_column(lines, message.lineno, message.col), code=type(message).__name__))
    return found

"""Import a context file and collect its variables, without running any of them.

    loaded = load_context("/path/to/context.py")   # or raises ContextLoadError
    loaded.variables     # {name: damnit_ctx.Variable}, in definition order
    loaded.specs         # ctx_rules spec dicts, same order
    loaded.graph         # ctx_rules.ContextGraph: .order, .data, .cluster, .direct
    loaded.static_problems  # problems that fail only their variable at run time

Every problem is a dict {kind, message, file, line, column, variable}, the shape of
LoadProblem in docs/protocol.md. Lines are 1-based; columns are 1-based characters.
"""
import ast
import inspect
import os
import sys
import traceback
import types

from _damnit_shim import ctx_rules
from damnit_ctx import Variable

# The context runs as a real module under this name, so that classes it defines
# (dataclasses, pickled objects) can find their module.
CONTEXT_MODULE_NAME = "_damnit_context"


class ContextLoadError(Exception):
    """The context file cannot be used at all: nothing in it may run."""

    def __init__(self, problems, traceback=None):
        super().__init__("; ".join(p["message"] for p in problems))
        self.problems = problems
        self.traceback = traceback


class LoadedContext:
    def __init__(self, path, module, variables, specs, graph, static_problems):
        self.path = path
        self.module = module
        self.variables = variables
        self.specs = specs
        self.graph = graph
        self.static_problems = static_problems


def problem(kind, message, path, line=None, column=None, variable=None):
    return {"kind": kind, "message": message, "file": path, "line": line,
            "column": column, "variable": variable}


def load_context(path):
    path = os.path.abspath(path)
    source = _read_source(path)
    tree, code = _compile(source, path)
    module = _execute(code, path, source)
    variables = {}
    for value in list(vars(module).values()):
        # Two Variables with one function name: the later one wins, as in the reference.
        if isinstance(value, Variable) and value.func is not None:
            variables[value.name] = value

    def_positions = _def_positions(tree)
    specs = [_spec(var, path, def_positions) for var in variables.values()]
    columns = {spec["name"]: spec.pop("column") for spec in specs}
    problems, graph = ctx_rules.check_context(specs)

    def as_dict(p):
        return problem("context", p.message, path, p.line, columns.get(p.name), p.name)

    load_problems = [as_dict(p) for p in problems if p.scope == "load"]
    if load_problems:
        raise ContextLoadError(load_problems)
    static_problems = [as_dict(p) for p in problems if p.scope != "load"]
    return LoadedContext(path, module, variables, specs, graph, static_problems)


def _read_source(path):
    with open(path, "rb") as f:
        raw = f.read()
    try:
        # A leading byte order mark is allowed, as when Python runs a file itself.
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line, column = _position_of_byte(raw, e.start)
        raise ContextLoadError([problem(
            "encoding",
            "invalid UTF-8 byte 0x%02x: save the file as UTF-8" % raw[e.start],
            path, line, column)])


def _position_of_byte(raw, offset):
    """1-based line and character column of a byte offset."""
    line_start = raw.rfind(b"\n", 0, offset) + 1
    prefix = raw[line_start:offset].decode("utf-8", errors="replace")
    return raw.count(b"\n", 0, offset) + 1, len(prefix) + 1


def _compile(source, path):
    try:
        tree = compile(source, path, "exec", ast.PyCF_ONLY_AST)
        return tree, compile(tree, path, "exec")
    except SyntaxError as e:
        raise ContextLoadError(
            [problem("syntax", e.msg, path, e.lineno, e.offset)],
            "".join(traceback.format_exception_only(type(e), e)))
    except ValueError as e:
        # Before Python 3.12 a NUL character is a ValueError rather than a SyntaxError.
        encoded = source.encode("utf-8")
        line, column = _position_of_byte(encoded, max(encoded.find(b"\0"), 0))
        raise ContextLoadError([problem("syntax", str(e), path, line, column)])


def _execute(code, path, source):
    module = types.ModuleType(CONTEXT_MODULE_NAME)
    module.__file__ = path
    sys.modules[CONTEXT_MODULE_NAME] = module
    # Modules next to context.py are importable and come first, as with the reference
    # backend (which runs `python -m` in the database directory), so a user's `results.py`
    # is the one the context imports. `damnit_ctx` stays ours: it is imported already.
    context_dir = os.path.dirname(path)
    if context_dir not in sys.path:
        sys.path.insert(0, context_dir)
    try:
        exec(code, vars(module))
    except (Exception, SystemExit) as e:
        kind = "import" if isinstance(e, ImportError) else "exception"
        tb = _first_context_frame(e.__traceback__, path)
        line, column = _deepest_context_position(e.__traceback__, path, source)
        raise ContextLoadError(
            [problem(kind, _describe_exception(e), path, line, column)],
            "".join(traceback.format_exception(type(e), e, tb)))
    return module


def _describe_exception(e):
    text = str(e)
    return "%s: %s" % (type(e).__name__, text) if text else type(e).__name__


def _first_context_frame(tb, path):
    """The traceback from the first frame in the context file (hides the loader's frames)."""
    start = tb
    while start is not None and start.tb_frame.f_code.co_filename != path:
        start = start.tb_next
    return start or tb


def _deepest_context_position(tb, path, source):
    line = column = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == path:
            line, column = tb.tb_lineno, _column_of_instruction(tb, source)
        tb = tb.tb_next
    return line, column


def _column_of_instruction(tb, source):
    """1-based character column of the failing expression (Python 3.11+), else None."""
    positions = getattr(tb.tb_frame.f_code, "co_positions", None)
    if positions is None:
        return None
    try:
        start_line, _, byte_column, _ = list(positions())[tb.tb_lasti // 2]
    except (IndexError, ValueError):
        return None
    if start_line != tb.tb_lineno or byte_column is None:
        return None
    lines = source.splitlines()
    if not 0 < start_line <= len(lines):
        return None
    text = lines[start_line - 1].encode("utf-8")[:byte_column]
    return len(text.decode("utf-8", errors="replace")) + 1


def _def_positions(tree):
    """Where each function's `def` is, keyed by its code object's first line (the line
    of its first decorator), since a variable's problems point at its `def`."""
    positions = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            positions[first] = (node.lineno, node.col_offset + 1)
    return positions


def _spec(var, path, def_positions):
    func = var.func
    code = getattr(func, "__code__", None)
    line = column = None
    if code is not None and code.co_filename == path:
        line, column = def_positions.get(code.co_firstlineno, (code.co_firstlineno, None))
    return {
        "name": var.name,
        "title": var.title,
        "data": var.data,
        "cluster": var.cluster,
        "tags": var.tags,
        "units": var.units,
        "summary": var.summary,
        "transient": var.transient,
        "line": line,
        "column": column,
        "params": _params(func),
    }


def _params(func):
    """Parameters after `run`, with their string annotations."""
    try:
        parameters = list(inspect.signature(func).parameters.values())[1:]
    except (TypeError, ValueError):
        return []
    annotations = getattr(func, "__annotations__", None) or {}
    params = []
    for param in parameters:
        annotation = annotations.get(param.name)
        params.append({
            "name": param.name,
            "annotation": annotation if isinstance(annotation, str) else None,
            "has_default": param.default is not inspect.Parameter.empty,
        })
    return params

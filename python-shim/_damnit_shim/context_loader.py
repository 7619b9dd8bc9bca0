"""Import a context file and collect its variables, without running any of them.

    loaded = load_context("/path/to/context.py")   # or raises ContextLoadError
    loaded.variables     # {name: damnit_ctx.Variable}: the file's, then its groups'
    loaded.specs         # ctx_rules spec dicts, same order
    loaded.graph         # ctx_rules.ContextGraph: .order, .data, .cluster, .direct
    loaded.static_problems  # problems that fail or skip only their variable at run time

The variables are those the reference collects: the file's module-level Variables and the
variables of its Group instances, or what the file puts in its default Pipeline
(pipeline.py). Every problem is a dict {kind, message, file, line, column, variable}, the
shape of LoadProblem in docs/protocol.md. Lines are 1-based; columns are 1-based characters.
"""
import ast
import itertools
import os
import sys
import traceback
import types

from _damnit_shim.compiled import CompiledContext
from _damnit_shim.pipeline import collect_context, pipeline_scope
from damnit_ctx import Variable, is_group_instance

# The context runs as a real module under this name, so that classes it defines
# (dataclasses, pickled objects) can find their module.
CONTEXT_MODULE_NAME = "_damnit_context"
# Contexts loaded by a Pipeline get modules of their own, leaving the backend's alone.
_pipeline_modules = itertools.count(1)


class ContextLoadError(Exception):
    """The context file cannot be used at all: nothing in it may run. `original` is the
    exception the reference raises for it (what a Pipeline raises)."""

    def __init__(self, problems, traceback=None, original=None):
        super().__init__("; ".join(p["message"] for p in problems))
        self.problems = problems
        self.traceback = traceback
        self.original = original


class LoadedContext(CompiledContext):
    def __init__(self, variables, source, path, module, position):
        super().__init__(variables, source, position)
        self.path = path
        self.module = module
        self.static_problems = [_as_dict(p, path, self) for p in self.warnings]


def problem(kind, message, path, line=None, column=None, variable=None):
    return {"kind": kind, "message": message, "file": path, "line": line,
            "column": column, "variable": variable}


def _as_dict(p, path, compiled):
    column = next((s["column"] for s in compiled.specs if s["name"] == p.name), None)
    return problem("context", p.message, path, p.line, column, p.name)


def load_context(path, main=True):
    """The context file at `path`. `main`: the backend's context, imported as the module
    CONTEXT_MODULE_NAME with its directory first on sys.path (as the reference runs it)."""
    path = os.path.abspath(path)
    return load_source(_read_source(path), path, main)


def load_source(source, path, main=False):
    """A context given as text; `path` names it in messages and tracebacks."""
    tree, code = _compile(source, path)
    position = _position_finder(tree, path)
    with pipeline_scope(path) as state:
        module = _execute(code, path, source, main)
        try:
            collected = collect_context(vars(module), state, source)
        except Exception as e:
            raise ContextLoadError(
                [_group_problem(e, path, source, state, position)],
                "".join(traceback.format_exception_only(type(e), e)), original=e)
    loaded = LoadedContext(collected.variables, source, path, module, position)
    if loaded.problems:
        raise ContextLoadError([_as_dict(p, path, loaded) for p in loaded.problems],
                               original=loaded.problem_exception())
    return loaded


def _group_problem(e, path, source, state, position):
    """The load problem of an error naming or expanding groups, where it points: the call
    that made the group instance, or the def of the variable."""
    where = getattr(e, "damnit_where", None)
    line = column = None
    if is_group_instance(where) and id(where) in state.sites:
        _, code, lasti, line = state.sites[id(where)]
        column = _column_of_instruction(code, lasti, line, source)
    elif isinstance(where, Variable):
        line, column = position(where.func)
    return problem("context", _describe_exception(e), path, line, column)


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


def _execute(code, path, source, main):
    name = CONTEXT_MODULE_NAME
    if not main:
        name = "%s_%d" % (CONTEXT_MODULE_NAME, next(_pipeline_modules))
    module = types.ModuleType(name)
    module.__file__ = path
    sys.modules[name] = module
    if main:
        # Modules next to context.py are importable and come first, as with the reference
        # backend (which runs `python -m` in the database directory), so a user's
        # `results.py` is the one the context imports. `damnit_ctx` stays ours: it is
        # imported already.
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
            "".join(traceback.format_exception(type(e), e, tb)), original=e)
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
            line = tb.tb_lineno
            column = _column_of_instruction(tb.tb_frame.f_code, tb.tb_lasti, line, source)
        tb = tb.tb_next
    return line, column


def _column_of_instruction(code, lasti, line, source):
    """1-based character column of the expression of the instruction at offset `lasti` of
    `code` on `line` (Python 3.11+), else None."""
    positions = getattr(code, "co_positions", None)
    if positions is None:
        return None
    try:
        start_line, _, byte_column, _ = list(positions())[lasti // 2]
    except (IndexError, ValueError):
        return None
    if start_line != line or byte_column is None:
        return None
    lines = source.splitlines()
    if not 0 < start_line <= len(lines):
        return None
    text = lines[start_line - 1].encode("utf-8")[:byte_column]
    return len(text.decode("utf-8", errors="replace")) + 1


def _position_finder(tree, path):
    """position(func) -> (line, column) of a function's `def` in this file (a variable's
    problems point there), (first line, None) elsewhere."""
    positions = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            # A function's code starts at its first decorator.
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            positions[first] = (node.lineno, node.col_offset + 1)

    def position(func):
        code = getattr(func, "__code__", None)
        if code is None or code.co_filename != path:
            return None, None
        return positions.get(code.co_firstlineno, (code.co_firstlineno, None))

    return position

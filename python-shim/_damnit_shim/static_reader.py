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
import io
import json
import tokenize
import warnings

from _damnit_shim import ctx_rules
from _damnit_shim.static_variables import (
    ModuleReader, SourceFacts, char_column, diagnostic, without_unresolved_dependencies,
)


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
    if facts.simulate:
        found, specs, complete = simulated_problems(tree, reader, tuple(target), lines)
        diagnostics.extend(found)
    elif reader.call_problems:
        # Executing the module stops at the first failing decorator call: the real loader
        # reports that exception and never gets to the variable rules.
        diagnostics.append(reader.call_problems[0])
        specs, complete = reader.specs, reader.complete
    else:
        specs, complete = reader.specs, reader.complete
        diagnostics.extend(rule_problems(specs, complete))
    if use_pyflakes:
        diagnostics.extend(pyflakes_warnings(tree, filename, lines, facts.annotation_positions))
    diagnostics.sort(key=lambda d: (d["line"] or 0, d["column"] or 0))
    variables = [{"name": s["name"], "title": ctx_rules.title_of(s) if ctx_rules.known(s["title"])
                  else None, "line": s["line"]} for s in specs]
    return {"diagnostics": diagnostics, "variables": variables, "complete": complete}


def rule_problems(specs, complete):
    """ctx_rules' problems as diagnostics at each variable's `def`: errors for those that stop
    the loader, warnings for those that fail or skip only their variable at run time."""
    if not complete:
        specs = [without_unresolved_dependencies(s, specs) for s in specs]
    problems, _ = ctx_rules.check_context(specs)
    columns = {s["name"]: s.get("column") for s in specs}
    return [diagnostic("error" if p.scope == "load" else "warning", "context", p.message, p.line,
                       columns.get(p.name), p.name, code=p.scope) for p in problems]


def simulated_problems(tree, reader, target, lines):
    """(diagnostics, specs, complete) of a module with groups or pipelines, which
    static_groups.py builds as the module would (imported only for such modules)."""
    from _damnit_shim.static_groups import Simulation

    simulation = Simulation(tree, reader, target, lambda line, offset: char_column(
        lines, line, offset))
    compiled, stopped = simulation.run()
    found = [diagnostic("warning", "context", message, line, column, code="static")
             for line, column, message in simulation.warnings]
    found += [diagnostic("error", kind, message, line, column, variable)
              for kind, message, line, column, variable in stopped]
    complete = simulation.complete and not simulation.uncertain
    if compiled is None:
        return found, reader.specs if not stopped else [], complete
    found += rule_problems(compiled.specs, complete)
    return found, compiled.specs, complete


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
        if isinstance(message, UndefinedName) and message.message_args[0] == \
                annotation_positions.get((message.lineno, message.col)):
            continue
        found.append(diagnostic(
            "warning", "pyflakes", message.message % message.message_args, message.lineno,
            char_column(lines, message.lineno, message.col), code=type(message).__name__))
    return found

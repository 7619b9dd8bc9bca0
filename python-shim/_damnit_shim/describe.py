"""`describe CONTEXT_FILE`: import a context and report its variables, running none.

Sends one `context` message (variables in execution order, after promotion) or one
`load_error` message. Exits 0 either way: the message says which.
"""
import sys

from _damnit_shim.context_loader import ContextLoadError, load_context


def main(channel, argv):
    if len(argv) != 1:
        sys.stderr.write("usage: damnit_shim.py --channel SPEC describe CONTEXT_FILE\n")
        return 2
    try:
        loaded = load_context(argv[0])
    except ContextLoadError as e:
        channel.send("load_error", problems=e.problems, traceback=e.traceback)
        return 0
    specs = {spec["name"]: spec for spec in loaded.specs}
    channel.send(
        "context",
        file=loaded.path,
        variables=[variable_info(loaded, name, specs[name]) for name in loaded.graph.order],
        static_problems=loaded.static_problems,
    )
    return 0


def _optional_text(value):
    return None if value is None else str(value)


def _tag_list(tags):
    if tags is None:
        return []
    if isinstance(tags, (set, frozenset)):
        return sorted(tags)
    return list(tags)


def variable_info(loaded, name, spec):
    var = loaded.variables[name]
    return {
        "name": name,
        "title": str(var.title),
        "description": _optional_text(var.description),
        "summary": _optional_text(var.summary),
        "data": loaded.graph.data[name],
        "cluster": loaded.graph.cluster[name],
        "tags": _tag_list(var.tags),
        "transient": bool(var.transient),
        "units": _optional_text(var.units),
        "parameters": spec["params"],
        "dependencies": loaded.graph.direct[name],
        "line": spec["line"],
    }

"""The shim's own modules, in one package that no user module is named like.

Only `damnit_ctx` (the API contexts import) and the entry script `damnit_shim.py` sit at the
top of python-shim/, which is first on sys.path: the modules next to a context file come
right after it, so a user's `results.py` or `runner.py` is the one the context imports.
Nothing here is imported at package level: the Pyodide validator loads this package with only
the modules the offline check needs (ctx_rules, the static_* modules, and groups, pipeline and
compiled, which it runs on contexts with groups and pipelines).
"""

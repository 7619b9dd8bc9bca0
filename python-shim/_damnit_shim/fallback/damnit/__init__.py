"""damnit-ts's stand-in for DAMNIT's `damnit` package, for environments without it.

It offers only `damnit.context`, so that context files written as DAMNIT's documentation
shows (`from damnit.context import Variable`) run here too. It comes last on sys.path: an
installed `damnit` is always the one imported, with its whole API.
"""


def __getattr__(name):
    raise ImportError(
        "damnit.%s is part of DAMNIT's own package, which is not installed in this Python "
        "(%s); only damnit.context is available here" % (name, __import__("sys").executable))

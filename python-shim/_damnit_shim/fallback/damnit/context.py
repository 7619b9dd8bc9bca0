"""The names a context file imports, as `from damnit.context import ...`: those of damnit_ctx
(see the stand-in package's docstring)."""
from _damnit_shim.compiled import ContextFileErrors, Results
from damnit_ctx import Cell, Group, GroupError, Pipeline, RunData, Skip, Variable

__all__ = ["Cell", "ContextFileErrors", "Group", "GroupError", "Pipeline", "Results",
           "RunData", "Skip", "Variable"]

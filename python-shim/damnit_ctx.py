"""The names a context file imports: `from damnit_ctx import Variable, Cell, Skip`.

This module only records what the user wrote. The loader (context_loader.py)
checks the decorator arguments against ctx_rules, and the run executor validates
and converts Cell contents, so importing a context stays cheap: standard library
only, valid on Python 3.9 and later.
"""
import inspect

__all__ = ["Cell", "Skip", "Variable"]


class Skip(Exception):
    """Raise in a variable to record why it has no value for this run."""


class Variable:
    """Decorator marking a function as a variable computed for each run.

    Usable as `@Variable` and as `@Variable(title=..., ...)`. `data` is kept as
    written (None, 'raw' or 'proc'); the context graph applies promotion.
    """

    def __init__(self, title=None, description=None, summary=None, data=None,
                 cluster=False, tags=None, transient=False, units=None):
        # A single string tag is a tag, not an iterable of one-letter tags.
        self.tags = (tags,) if isinstance(tags, str) else tags
        self.description = description
        self.summary = summary
        self.data = data
        self.cluster = cluster
        self.transient = transient
        self.units = units
        self.name = None
        self.func = None
        if callable(title):
            # `@Variable` without parentheses: we were given the function itself.
            self.title = None
            self(title)
        else:
            self.title = title

    def __call__(self, func):
        self.func = func
        self.name = func.__name__
        if self.title is None:
            self.title = self.name
        if self.description is None:
            self.description = inspect.getdoc(func)
        return self

    def __repr__(self):
        return "<Variable %s>" % (self.name,)


class Cell:
    """A value with display options for its table cell. Stored as given; the run
    executor checks and converts it."""

    def __init__(self, data, summary=None, summary_value=None, bold=None, background=None,
                 *, preview=None, units=None):
        self.data = data
        self.summary = summary
        self.summary_value = summary_value
        self.bold = bold
        self.background = background
        self.preview = preview
        self.units = units

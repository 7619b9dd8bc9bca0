"""How the offline checker rebuilds a context's functions and classes (static_groups.py).

A @Variable function becomes a real Variable around a stand-in function with the same name,
parameters and string annotations, and no body. A @Group class is rebuilt with the real Group
decorator around its fields (annotations and the defaults the source shows) and those
stand-ins. Where a value or a class body cannot be known it is UNKNOWN.
"""
import ast
import copy
import sys

import damnit_ctx
from _damnit_shim.ctx_rules import UNKNOWN
from _damnit_shim.pipeline import Pipeline
from _damnit_shim.static_variables import VARIABLE_DEFAULTS, callee
from damnit_ctx import GroupBoundVariable, Variable, is_group_instance

# A group instance whose class defines these may set its fields as it likes.
OPAQUE_CLASS_MEMBERS = frozenset(["__init__", "__post_init__", "__setattr__", "__getattr__",
                                  "__getattribute__", "__new__", "__init_subclass__"])


class ModuleStopped(Exception):
    """The simulated module raised `error` at `node`: the real import stops there too."""

    def __init__(self, error, line, column):
        super().__init__(error)
        self.error = error
        self.line = line
        self.column = column


class StandIns:
    """The part of the Simulation that rebuilds functions and classes."""

    def function(self, node, in_class=False):
        """A stand-in Variable for a @Variable def, a stand-in function for a plain method,
        else UNKNOWN."""
        decorators = node.decorator_list
        if not decorators:
            return self.stub(node) if in_class else UNKNOWN
        if not self.reader.is_variable_ref(callee(decorators[0])):
            return UNKNOWN  # a property, a staticmethod...: what it gives is unknown
        self.read_callees.add(id(callee(decorators[0])))
        if len(decorators) > 1:
            self.complete = False
            return UNKNOWN
        problems = len(self.reader.call_problems)
        values = dict(VARIABLE_DEFAULTS)
        if isinstance(decorators[0], ast.Call):
            values.update(self.reader._decorator_arguments(node, decorators[0]))
        if len(self.reader.call_problems) > problems:
            problem = self.reader.call_problems[problems]
            raise ModuleStopped(TypeError(problem["message"][len("TypeError: "):]),
                                problem["line"], problem["column"])
        func = self.stub(node)
        unknown = {name for name, value in values.items() if value is UNKNOWN}
        # Expansion merges tags and builds titles: stand in with values that match nothing, and
        # make the copies' UNKNOWN afterwards.
        if in_class and "tags" in unknown:
            values["tags"] = None
        if "title" in unknown:
            values["title"] = self.placeholder_title()
        self.unknown_attrs[id(func)] = unknown
        return Variable(**values)(func)

    def placeholder_title(self):
        """A title no variable can have, for one that is unknown (never a false duplicate)."""
        self.placeholders += 1
        return "\0unknown title %d" % self.placeholders

    def stub(self, node):
        """A function with the def's name, parameters and string annotations, and no body."""
        args = copy.deepcopy(node.args)
        annotations = {}
        for arg in args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg]:
            if arg is None:
                continue
            annotation = self.reader._annotation(arg.annotation)
            if annotation is not None:
                annotations[arg.arg] = annotation
            arg.annotation = None
        args.defaults = [ast.Constant(None) for _ in args.defaults]
        args.kw_defaults = [None if d is None else ast.Constant(None) for d in args.kw_defaults]
        definition = ast.FunctionDef(name=node.name, args=args, body=[ast.Pass()],
                                     decorator_list=[], returns=None, type_comment=None)
        if sys.version_info >= (3, 12):
            definition.type_params = []
        module = ast.fix_missing_locations(ast.Module(body=[definition], type_ignores=[]))
        namespace = {}
        exec(compile(module, "<context stand-in>", "exec"), namespace)
        func = namespace[node.name]
        func.__annotations__ = annotations
        self.positions[id(func.__code__)] = (node.lineno, self.column(node))
        return func

    def class_(self, node):
        """A group class rebuilt around stand-ins, or UNKNOWN."""
        bases = [self.evaluate(base) for base in node.bases]
        group_decorators = [d for d in node.decorator_list
                            if self.evaluate(callee(d)) is damnit_ctx.Group]
        has_variables = any(isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))
                            and s.decorator_list
                            and self.reader.is_variable_ref(callee(s.decorator_list[0]))
                            for s in node.body)
        group_bases = [b for b in bases if isinstance(b, type) and hasattr(b, "__damnit_group__")]
        if not group_decorators:
            if group_bases:
                self.warnings.append((node.lineno, self.column(node),
                                      "class %r derives from the Group %r but is not decorated "
                                      "with @Group itself: its own fields are not fields of the "
                                      "group (decorate it with @Group)"
                                      % (node.name, group_bases[0].__name__)))
            elif has_variables:
                self.warnings.append((node.lineno, self.column(node),
                                      "class %r has @Variable methods but is not decorated with "
                                      "@Group: they never run" % node.name))
                return UNKNOWN
            else:
                return UNKNOWN
        if len(node.decorator_list) != len(group_decorators) or node.keywords or \
                any(not isinstance(b, type) for b in bases):
            self.complete = False
            return UNKNOWN
        namespace = self.class_namespace(node)
        if namespace is None or OPAQUE_CLASS_MEMBERS & set(namespace):
            self.complete = False
            return UNKNOWN
        try:
            cls = type(node.name, tuple(bases) or (object,), namespace)
        except Exception as e:
            self.stop(e, node)
        for decorator in reversed(group_decorators):
            wrap = self.evaluate(decorator)
            if wrap is UNKNOWN:
                self.complete = False
                return UNKNOWN
            if self.target < (3, 10):
                self.stop(damnit_ctx.GroupError(
                    "Groups need Python 3.10 or newer (keyword-only dataclass fields); this is "
                    "Python %d.%d" % self.target), decorator)
            try:
                cls = wrap(cls)
            except Exception as e:
                self.stop(e, decorator)
        return cls

    def read_type_hint(self, node):
        """`Variable` in a field's type (`v: Variable | None`) makes no variable."""
        self.read_callees.update(id(sub) for sub in ast.walk(node)
                                 if self.reader.is_variable_ref(sub))

    def class_namespace(self, node):
        """The class body's names: fields (annotations, defaults), stand-in methods and
        variables; None for a body we cannot follow."""
        # dataclasses reads string annotations in the namespace of the class's module.
        namespace = {"__module__": __name__, "__qualname__": node.name}
        annotations = {}
        for statement in node.body:
            if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
                self.read_type_hint(statement.annotation)
                text = ast.unparse(statement.annotation)
                name = statement.target.id
                if "ClassVar" not in text:
                    annotations[name] = text
                if statement.value is not None:
                    namespace[name] = self.evaluate(statement.value)
            elif isinstance(statement, ast.Assign):
                value = self.evaluate(statement.value)
                for target in statement.targets:
                    if not isinstance(target, ast.Name):
                        return None
                    namespace[target.id] = value
            elif isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
                namespace[statement.name] = self.function(statement, in_class=True)
            elif isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
                continue  # the docstring
            elif not isinstance(statement, ast.Pass):
                return None
        namespace["__annotations__"] = annotations
        return namespace


def is_model(value):
    """Whether a value is one of the objects the simulation builds (and must follow)."""
    return isinstance(value, (Variable, GroupBoundVariable, Pipeline)) or is_group_instance(value)


def is_model_name(value):
    """A model object, a group class, or the API that makes them."""
    return is_model(value) or value is damnit_ctx or value is Pipeline or \
        value is damnit_ctx.Group or value is Variable or \
        (isinstance(value, type) and hasattr(value, "__damnit_group__"))

"""Group instances become variables: naming, `self#` resolution and expansion.

    expand_groups(context, existing)   # {name: Variable} of every group reachable from context

A group without an explicit name takes the name of the global it is assigned to; a group
reachable only through another group's field takes `<parent name>.<field>`, the shortest
such path winning. Each @Variable of the group's class (and its bases) becomes a copy named
`<group name>.<method>`, titled `<group title><sep><variable title>`, with the group's tags
added and its `self#` annotations rewritten to `var#` names. A `self#` path through a field
that is None gives a transient placeholder variable returning None, so that dependants
without a default are skipped and those with one get their default.

Errors carry `damnit_where`: the group instance or the Variable they are about, for the
loader to say where in context.py. Standard library only (the offline checker runs this too).
"""
import inspect
import re
from collections import deque
from copy import copy

from _damnit_shim.ctx_rules import UNKNOWN
from damnit_ctx import (
    GroupBoundVariable, GroupError, Variable, _normalize_tags, is_group_instance,
)


def located(error, where):
    """`error`, marked with the group instance or Variable it is about (once: the innermost
    place wins)."""
    if getattr(error, "damnit_where", None) is None:
        error.damnit_where = where
    return error


def group_name(group):
    """The group's name, or the reference's error for a missing or unusable one."""
    name = group.name
    if isinstance(name, str) and name:
        return name
    if name is None:
        raise located(GroupError(
            "Group instance of %r has no name. Provide name=... or assign it to a variable "
            "in the context file." % type(group).__name__), group)
    raise located(GroupError(
        "Group instance of %r has invalid name %r. Provide a non-empty string name."
        % (type(group).__name__, name)), group)


def assign_group_names(context):
    """Name every group reachable from the globals `context` that has no explicit name."""
    candidates = {}  # id(group) -> {"group", "depth", "names"}
    pending = deque()

    def candidate(group, path, depth):
        entry = candidates.get(id(group))
        if entry is None or depth < entry["depth"]:
            candidates[id(group)] = {"group": group, "depth": depth, "names": {path}}
        elif depth == entry["depth"]:
            entry["names"].add(path)

    for global_name, value in list(context.items()):
        if global_name.startswith("__") or not is_group_instance(value):
            continue
        path = value.name or global_name
        candidate(value, path, 0)
        pending.append((value, path, 0))

    expanded_at = {}
    while pending:
        group, path, depth = pending.popleft()
        if candidates[id(group)]["depth"] != depth or expanded_at.get(id(group)) == depth:
            continue
        expanded_at[id(group)] = depth
        for field_name, value in vars(group).items():
            if is_group_instance(value):
                child = "%s.%s" % (group.name or path, field_name)
                candidate(value, child, depth + 1)
                pending.append((value, child, depth + 1))

    for entry in candidates.values():
        group = entry["group"]
        if group.name is None:
            names = sorted(entry["names"])
            if len(names) > 1:
                raise located(GroupError(
                    "Group instance of %r is assigned to multiple names %s without an explicit "
                    "name." % (type(group).__name__, names)), group)
            group.name = names[0]
        if group.title is None:
            group.title = group.name.replace(".", group.sep)


def collect_group_instances(objects):
    """Every group among `objects` and their fields, each once, in the reference's order (a
    stack: the last global first, each group's fields right after it)."""
    pending = [obj for obj in objects if is_group_instance(obj)]
    groups, seen = [], set()
    while pending:
        group = pending.pop()
        if id(group) in seen:
            continue
        seen.add(id(group))
        group_name(group)
        groups.append(group)
        pending.extend(value for value in vars(group).values() if is_group_instance(value))
    return groups


def group_variables(group):
    """{method name: Variable} of the group's class and its bases; a subclass's variable
    replaces its base's of the same name, in the base's place."""
    found = {}
    for cls in reversed(type(group).mro()):
        for name, value in cls.__dict__.items():
            if isinstance(value, Variable):
                found[name] = value
    return found


def _missing_placeholder(group, path):
    """A transient variable that returns None, standing for `self#<path>` through a field
    that is None; its name says so in the messages of the variables that needed it."""
    def _missing(run):
        return None

    var = Variable(transient=True)(_missing)
    var.name = "%s.__missing__.%s" % (group.name, re.sub(r"[!?*\[\]]", "_", path))
    var.title = var.name
    return var


def resolve_self_annotation(annotation, group):
    """(`var#...` annotation, placeholder Variable or None) for a `self#` annotation. A field
    the offline checker could not read (UNKNOWN) gives an UNKNOWN annotation."""
    path = annotation[len("self#"):]
    target, _, rest = path.partition(".")
    if rest:
        linked = getattr(group, target)
        if linked is UNKNOWN:
            return UNKNOWN, None
        if linked is None:
            placeholder = _missing_placeholder(group, path)
            return "var#" + placeholder.name, placeholder
        return resolve_self_annotation("self#" + rest, linked)

    try:
        ref = getattr(group, target)
    except AttributeError:
        if any(ch in target for ch in "*?["):
            # A glob over the group's variables: matched like any var# pattern.
            return "var#%s.%s" % (group.name, target), None
        raise GroupError(
            "Attribute %r on group %r does not exist, but is referenced as a dependency in "
            "annotation." % (target, group.name))
    if ref is UNKNOWN:
        return UNKNOWN, None
    if ref is None:
        placeholder = _missing_placeholder(group, target)
        return "var#" + placeholder.name, placeholder
    if not isinstance(ref, (Variable, GroupBoundVariable)):
        raise GroupError(
            "Attribute %r on group %r is of type %r, but a Variable is required for a self# "
            "dependency." % (target, group.name, type(ref).__name__))
    return "var#" + ref.name, None


def expand_group(group):
    """{name: Variable} for one named group instance: its variables' copies, each after the
    placeholders it needs."""
    if group.title is None:
        group.title = group.name
    expanded = {}
    for var_def in group_variables(group).values():
        try:
            bound = var_def.func.__get__(group, type(group))
            var = copy(var_def)
            var(bound)
            # The method's own docstring, as read when it was decorated: inspect.getdoc of a
            # bound method would find the Variable object's class docstring instead.
            var.description = var_def.description
            var.name = "%s.%s" % (group.name, var_def.name)
            var.title = "%s%s%s" % (group.title, group.sep, var_def.title)
            written = getattr(var_def.func, "__annotations__", None) or {}
            annotations = {}
            for arg, param in inspect.signature(bound).parameters.items():
                annotation = written.get(arg, param.annotation)
                if annotation is not UNKNOWN and not isinstance(annotation, str):
                    continue
                if isinstance(annotation, str) and annotation.startswith("self#"):
                    annotation, placeholder = resolve_self_annotation(annotation, group)
                    if placeholder is not None:
                        expanded[placeholder.name] = placeholder
                annotations[arg] = annotation
            var.tags = tuple(sorted(set(group.tags) | set(_normalize_tags(var.tags))))
            var._annotation_overrides = annotations
        except Exception as e:
            raise located(e, var_def)
        expanded[var.name] = var
    return expanded


def expand_groups(context, existing=None):
    """{name: Variable} of the groups in the globals `context` and their linked groups;
    `existing` are the variables defined otherwise, whose names a group may not reuse."""
    assign_group_names(context)
    groups = collect_group_instances(context.values())
    owners = {}
    for group in groups:
        if owners.setdefault(group.name, group) is not group:
            raise located(GroupError(
                "Group name %r is used by multiple group instances" % group.name), group)
    taken = set(existing or ())
    expanded = {}
    for group in groups:
        variables = expand_group(group)
        for name in variables:
            if name in taken or name in expanded:
                raise located(GroupError(
                    "Duplicate variable name %r from group %r" % (name, group.name)), group)
        expanded.update(variables)
    return expanded

"""The memory limit of one run (db-config run_memory_limit), applied in the process that runs
the context, so that a runaway variable fails with a MemoryError instead of taking a shared
host's memory.

The limit is RLIMIT_DATA: the private writable memory of the process (heap, anonymous
mappings: what numpy arrays and Python objects live in). Unlike RLIMIT_AS it leaves out
shared libraries, mapped files and address space merely reserved (PROT_NONE), which numpy,
h5py and BLAS libraries have plenty of and which cost no memory. Limits of its kind are per
process: what a variable starts gets a limit of its own, not a share of the run's.
"""
import os
import resource

DEFAULT_FRACTION = 0.5
SETTING = "db-config run_memory_limit"
GB = 1024 ** 3

# What the running process was given: (bytes, description), or None without a limit.
_active = None


def parse(spec):
    """(bytes, description) for `--memory-limit`: `auto` (DEFAULT_FRACTION of this machine's
    memory) or a number of GB, 0 for none (None)."""
    if spec == "auto":
        total = _physical_memory()
        if total is None:
            return None
        limit = int(total * DEFAULT_FRACTION)
        return limit, "%s GB, half of this machine's memory" % _gb(limit)
    gb = float(spec)
    if not gb > 0:
        return None
    return int(gb * GB), "%s GB" % _gb(gb * GB)


def apply(spec):
    """Limits this process as `--memory-limit spec` says; never above the hard limit."""
    global _active
    parsed = parse(spec)
    if parsed is None:
        return
    limit, description = parsed
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY and hard < limit:
        limit = hard
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    _active = (limit, description)


def explain(error):
    """A MemoryError raised under the run's limit, as one that says so; other errors as they
    are."""
    if _active is None or not isinstance(error, MemoryError):
        return error
    detail = str(error)
    explained = MemoryError("exceeded the run memory limit of %s (%s)%s"
                            % (_active[1], SETTING, ": " + detail if detail else ""))
    explained.__traceback__ = error.__traceback__
    return explained


def _physical_memory():
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _gb(n):
    return ("%.1f" % (n / GB)).rstrip("0").rstrip(".")

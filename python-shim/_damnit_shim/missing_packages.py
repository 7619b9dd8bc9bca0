"""What to tell the user when their interpreter lacks a package the shim needs."""
import importlib.util
import sys


def missing_package_message(error):
    """An interpreter without the packages the shim imports (numpy, h5py): say which are
    missing from which interpreter, and how to install them there."""
    missing = [name for name in ("numpy", "h5py") if importlib.util.find_spec(name) is None]
    if error.name and error.name not in missing:
        missing.insert(0, error.name)
    return ("%s cannot run context variables: %s. Install %s into that environment "
            "(%s -m pip install %s), or choose another interpreter with "
            "'amore-proto db-config context_python /path/to/python'"
            % (sys.executable, error, "it" if len(missing) == 1 else "them",
               sys.executable, " ".join(missing)))

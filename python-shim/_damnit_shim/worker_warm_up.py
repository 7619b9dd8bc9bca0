"""The warm worker's start (worker.py): the modules it imports once, and a mock run that warms
their caches before any child is forked."""
import importlib
import logging
import os
import shutil
import sys
import tempfile

from _damnit_shim.shim_channel import Channel

# Imported once in the worker, in this order, when importable. xarray.core.groupby is one of
# xarray's lazy imports that a run of the sample context would otherwise pay in every child.
PRELOAD = ("numpy", "h5py", "pandas", "xarray", "xarray.core.groupby", "extra_data", "h5netcdf",
           "matplotlib")
# The shim's modules a run imports (runner imports the rest).
SHIM_MODULES = ("_damnit_shim.runner",)


# A mock run of this context in the worker itself, before any fork: what every run does the
# first time (numpy, h5py, xarray and h5netcdf's lazy imports, compiled regular expressions,
# extra_data adapted, thumbnails) is then done once, not in every child.
WARM_UP_CONTEXT = '''
import numpy as np
import xarray as xr
from damnit_ctx import Cell, Variable

@Variable(title="Scalar", units="uJ")
def scalar(run):
    return 1.5

@Variable(title="Trace", summary="mean")
def trace(run, factor: "var#scalar"):
    return xr.DataArray(np.arange(20.0) * factor, dims=["trainId"], coords={"trainId": np.arange(20)})

@Variable(title="Line")
def line(run):
    return np.linspace(0, 1, 50)

@Variable(title="Image")
def image(run):
    return np.outer(np.arange(64.0), np.arange(48.0))

@Variable(title="Text")
def text(run, n: "meta#run_number"):
    return Cell("run %d" % n, bold=True, background="#ffcc00")
'''


def preload():
    """(imported, unavailable) module names."""
    imported, unavailable = [], []
    for name in PRELOAD:
        try:
            if name == "matplotlib":
                import matplotlib
                # No display in a worker; an MPLBACKEND the user set still wins.
                if "MPLBACKEND" not in os.environ:
                    matplotlib.use("Agg")
                import matplotlib.pyplot  # noqa: F401
            else:
                importlib.import_module(name)
            imported.append(name)
        except ImportError:
            unavailable.append(name)
        except Exception as e:
            # A broken package: the runs that use it will say so; the worker goes on.
            sys.stderr.write("worker: importing %s failed: %s: %s\n" % (name, type(e).__name__, e))
            unavailable.append(name)
    for name in SHIM_MODULES:
        try:
            importlib.import_module(name)
            imported.append(name)
        except ImportError:
            # numpy or h5py missing: each child reports it as its run's fatal error.
            unavailable.append(name)
    return imported, unavailable


def warm_up(parent=None):
    """Runs WARM_UP_CONTEXT on a mock run here, leaving no trace but warm caches, in a
    directory made under `parent` (default: the system's temporary directory). True if it went
    well; a failure only costs speed."""
    from _damnit_shim import runner
    from _damnit_shim.context_loader import CONTEXT_MODULE_NAME
    # The owner's pid in the name: what a worker killed with SIGKILL leaves, the orchestrator
    # removes at its next start (src/temp-dirs.ts).
    directory = tempfile.mkdtemp(prefix="damnit-warm-up-%d-" % os.getpid(), dir=parent)
    path_before = list(sys.path)
    try:
        context = os.path.join(directory, "context.py")
        with open(context, "w") as f:
            f.write(WARM_UP_CONTEXT)
        # runner.main configures logging as it does in every run; the warm-up's lines are no
        # one's business.
        logging.disable(logging.CRITICAL)
        code = runner.main(Channel("file:" + os.devnull), [
            context, "--proposal", "1", "--run", "1", "--run-data", "all", "--mock",
            "--proposal-path", directory, "--out", os.path.join(directory, "p1_r1.h5")])
        return code == 0
    except Exception as e:
        sys.stderr.write("worker: warm-up run failed: %s: %s\n" % (type(e).__name__, e))
        return False
    finally:
        logging.disable(logging.NOTSET)
        sys.modules.pop(CONTEXT_MODULE_NAME, None)
        sys.path[:] = path_before
        shutil.rmtree(directory, ignore_errors=True)

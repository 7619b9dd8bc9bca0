"""Entry point the orchestrator starts in the user's context_python.

    python damnit_shim.py --channel fd:3 describe CONTEXT_FILE
    python damnit_shim.py --channel fd:3 run CONTEXT_FILE [run options]
    python damnit_shim.py --channel fd:3 worker --socket PATH   (warm fork server)

Each command lives in its own module; this file only sets up the import path and
the channel, says hello, and dispatches.
"""
import os
import sys

SHIM_DIR = os.path.dirname(os.path.abspath(__file__))
# Contexts do `from damnit_ctx import Variable`: make the shim's modules importable.
if SHIM_DIR not in sys.path:
    sys.path.insert(0, SHIM_DIR)

COMMANDS = {
    "describe": "describe",
    "run": "runner",
    "worker": "worker",
}


def main(argv):
    if len(argv) < 3 or argv[0] != "--channel" or argv[2] not in COMMANDS:
        sys.stderr.write("usage: damnit_shim.py --channel fd:N|file:PATH {%s} ...\n"
                         % ",".join(COMMANDS))
        return 2
    if argv[1].startswith("fd:"):
        end_with_parent()
    from shim_channel import Channel
    channel = Channel(argv[1])
    # Also fails if the parent died before end_with_parent: nobody reads the channel any more.
    channel.hello()
    try:
        module = __import__(COMMANDS[argv[2]])
    except ImportError as e:
        channel.send("fatal", traceback=None, message=missing_package_message(e))
        return 1
    return module.main(channel, argv[3:])


def end_with_parent():
    """Started by the orchestrator, whose pipe is our channel: end when it ends, even by
    SIGKILL, so that a killed backend leaves no run behind that writes on alone (Linux only;
    elsewhere the broken channel ends the run at its next message)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import signal
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    except Exception:
        pass


def missing_package_message(error):
    """An interpreter without the packages the shim imports (numpy, h5py): say which are
    missing from which interpreter, and how to install them there."""
    import importlib.util
    missing = [name for name in ("numpy", "h5py") if importlib.util.find_spec(name) is None]
    if error.name and error.name not in missing:
        missing.insert(0, error.name)
    return ("%s cannot run context variables: %s. Install %s into that environment "
            "(%s -m pip install %s), or choose another interpreter with "
            "'amore-proto db-config context_python /path/to/python'"
            % (sys.executable, error, "it" if len(missing) == 1 else "them",
               sys.executable, " ".join(missing)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Entry point the orchestrator starts in the user's context_python.

    python damnit_shim.py --channel fd:3 describe CONTEXT_FILE
    python damnit_shim.py --channel fd:3 run CONTEXT_FILE [run options]
    python damnit_shim.py --channel fd:3 worker --socket PATH   (warm fork server)
    python damnit_shim.py --channel fd:3 salvage --out H5PATH ...   (what a stopped run staged)
    python damnit_shim.py array-task TASKS_FILE   (Slurm array task: the arguments of its run)
    python damnit_shim.py remote-worker --connect HOST:PORT --token-file PATH   (warm worker in a Slurm job)

Each command lives in its own module of the _damnit_shim package; this file only sets up the
import path and the channel, says hello, and dispatches. Only this script and damnit_ctx.py
sit next to the package, so that the modules next to a context file are never hidden by ours.
"""
import atexit
import importlib
import os
import sys

SHIM_DIR = os.path.dirname(os.path.abspath(__file__))
# Contexts do `from damnit_ctx import Variable`: make it (and our package) importable.
if SHIM_DIR not in sys.path:
    sys.path.insert(0, SHIM_DIR)

COMMANDS = {
    "describe": "_damnit_shim.describe",
    "run": "_damnit_shim.runner",
    "worker": "_damnit_shim.worker",
    "salvage": "_damnit_shim.salvage",
}


def main(argv):
    if argv[:1] == ["remote-worker"]:
        from _damnit_shim.remote_worker import main as remote_worker
        return remote_worker(argv[1:])
    if argv[:1] == ["array-task"]:
        from _damnit_shim.array_task import task_argv
        argv = task_argv(argv[1:])
        if argv is None:
            return 2
    if len(argv) < 3 or argv[0] != "--channel" or argv[2] not in COMMANDS:
        sys.stderr.write("usage: damnit_shim.py --channel fd:N|file:PATH {%s} ...\n"
                         "       damnit_shim.py array-task TASKS_FILE\n" % ",".join(COMMANDS))
        return 2
    if argv[1].startswith("fd:"):
        end_with_parent()
    from _damnit_shim.shim_channel import Channel
    channel = Channel(argv[1])
    # Also fails if the parent died before end_with_parent: nobody reads the channel any more.
    channel.hello()
    try:
        module = importlib.import_module(COMMANDS[argv[2]])
    except ImportError as e:
        from _damnit_shim.missing_packages import missing_package_message
        channel.send("fatal", traceback=None, message=missing_package_message(e))
        return 1
    if argv[2] != "run":
        return module.main(channel, argv[3:])
    from _damnit_shim import leftovers
    leftovers.adopt_orphans()
    try:
        return module.main(channel, argv[3:])
    finally:
        # The context's exit handlers first (they may stop what they started), then whatever
        # it left running ends with the run.
        atexit._run_exitfuncs()
        leftovers.end_leftovers()


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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

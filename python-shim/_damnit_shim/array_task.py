"""One task of a `reprocess --cluster` Slurm array job.

    python damnit_shim.py array-task TASKS_FILE

TASKS_FILE is JSON written by the orchestrator: {"tasks": {"<array index>": [shim args]}},
the index being the run number and the arguments those of damnit_shim.py for that run
(`--channel file:PATH run CONTEXT_FILE --run R ...`). Slurm tells the task its index in
$SLURM_ARRAY_TASK_ID. The job script only execs the shim, so no shell ever reads the
arguments.
"""
import json
import os
import sys


def task_argv(argv):
    """The shim arguments of this task's run; None, after saying why on stderr, if there are none."""
    if len(argv) != 1:
        sys.stderr.write("usage: damnit_shim.py array-task TASKS_FILE\n")
        return None
    index = os.environ.get("SLURM_ARRAY_TASK_ID")
    if index is None:
        sys.stderr.write("damnit_shim.py array-task runs as a task of a Slurm array job "
                         "($SLURM_ARRAY_TASK_ID is not set)\n")
        return None
    with open(argv[0], encoding="utf-8") as f:
        tasks = json.load(f)["tasks"]
    if index not in tasks:
        sys.stderr.write("array task %s is not in %s\n" % (index, argv[0]))
        return None
    return tasks[index]

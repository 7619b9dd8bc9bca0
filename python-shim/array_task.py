"""One task of a `reprocess --cluster` Slurm array job.

    python array_task.py TASKS_FILE

TASKS_FILE is JSON written by the orchestrator: {"tasks": {"<array index>": [shim args]}},
the index being the run number and the arguments those of damnit_shim.py for that run
(`--channel file:PATH run CONTEXT_FILE --run R ...`). Slurm tells the task its index in
$SLURM_ARRAY_TASK_ID. The job script only execs this file, so no shell ever reads the
arguments.
"""
import json
import os
import sys

SHIM_DIR = os.path.dirname(os.path.abspath(__file__))
if SHIM_DIR not in sys.path:
    sys.path.insert(0, SHIM_DIR)


def main(argv):
    if len(argv) != 1:
        sys.stderr.write("usage: array_task.py TASKS_FILE\n")
        return 2
    index = os.environ.get("SLURM_ARRAY_TASK_ID")
    if index is None:
        sys.stderr.write("array_task.py runs as a task of a Slurm array job "
                         "($SLURM_ARRAY_TASK_ID is not set)\n")
        return 2
    with open(argv[0], encoding="utf-8") as f:
        tasks = json.load(f)["tasks"]
    if index not in tasks:
        sys.stderr.write("array task %s is not in %s\n" % (index, argv[0]))
        return 2
    import damnit_shim
    return damnit_shim.main(tasks[index])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

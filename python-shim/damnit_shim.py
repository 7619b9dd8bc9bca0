"""Entry point the orchestrator starts in the user's context_python.

    python damnit_shim.py --channel fd:3 describe CONTEXT_FILE
    python damnit_shim.py --channel fd:3 run CONTEXT_FILE [run options]

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
}


def main(argv):
    if len(argv) < 3 or argv[0] != "--channel" or argv[2] not in COMMANDS:
        sys.stderr.write("usage: damnit_shim.py --channel fd:N|file:PATH {%s} ...\n"
                         % ",".join(COMMANDS))
        return 2
    from shim_channel import Channel
    channel = Channel(argv[1])
    channel.hello()
    module = __import__(COMMANDS[argv[2]])
    return module.main(channel, argv[3:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

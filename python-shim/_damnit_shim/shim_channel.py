"""The shim's side of the protocol (docs/protocol.md): one JSON object per line on a
dedicated channel, so that nothing the user's code prints can corrupt it."""
import json
import os
import sys

PROTOCOL_VERSION = 1
SHIM_VERSION = "0.1.0"


class Channel:
    """Where messages go: `fd:N` (a pipe the orchestrator opened) or `file:PATH`
    (appended, for Slurm jobs whose messages are read back after the job)."""

    def __init__(self, spec):
        kind, _, target = spec.partition(":")
        if kind == "fd":
            self._stream = os.fdopen(int(target), "w", encoding="utf-8", closefd=False)
        elif kind == "file":
            self._stream = open(target, "a", encoding="utf-8")
        else:
            raise ValueError("channel must be fd:N or file:PATH, not %r" % spec)

    def send(self, kind, **fields):
        message = {"protocol": PROTOCOL_VERSION, "kind": kind}
        message.update(fields)
        # allow_nan=False: NaN is not JSON; senders encode it explicitly.
        self._stream.write(json.dumps(message, allow_nan=False, ensure_ascii=False) + "\n")
        self._stream.flush()

    def hello(self):
        self.send("hello",
                  python_version="%d.%d.%d" % sys.version_info[:3],
                  executable=sys.executable,
                  shim_version=SHIM_VERSION)

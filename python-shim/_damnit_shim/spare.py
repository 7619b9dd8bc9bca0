"""The warm worker's spare: a child forked ahead of the next request (worker.py)."""
import json
import os
import select


class Spare:
    """A child forked ahead of the next request: its pid, the pipe its request goes down, and
    the pipe on which it says it has prepared (None: it does not prepare)."""

    def __init__(self, pid, request_pipe, ready_pipe):
        self.pid = pid
        self.request_pipe = request_pipe
        self.ready_pipe = ready_pipe

    def ready(self):
        """Done preparing, or ended (then the hand-over fails and a child is forked instead)."""
        if self.ready_pipe is None:
            return True
        readable, _, _ = select.select([self.ready_pipe], [], [], 0)
        return bool(readable)

    def close(self):
        """Closes the worker's ends of its pipes."""
        for fd in (self.request_pipe, self.ready_pipe):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.request_pipe = self.ready_pipe = None


def read_request(fd):
    """A spare's request: everything the worker writes before closing the pipe. The worker
    gone without writing one: nothing to do."""
    chunks = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    if not chunks:
        os._exit(0)
    return json.loads(b"".join(chunks))

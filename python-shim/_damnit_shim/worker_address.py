"""Where the warm worker's children reach the orchestrator, and where the worker keeps its own
files, given the address it was started with (worker.py)."""
import os
import socket


def scratch_dir(address):
    """Where the worker's own files go: the directory of the orchestrator's Unix socket (its own
    temporary directory, removed with it even when the worker is killed), or None (the system's
    temporary directory) for a worker in a Slurm job, reached over TCP."""
    return None if address.startswith("tcp:") else os.path.dirname(address)


def connect(address):
    """A connection to the orchestrator: `tcp:HOST:PORT` (a worker in a Slurm job,
    remote_worker.py) or the path of its Unix socket."""
    if address.startswith("tcp:"):
        host, _, port = address[4:].rpartition(":")
        conn = socket.create_connection((host, int(port)))
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(address)
    return conn


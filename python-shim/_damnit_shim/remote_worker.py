"""`remote-worker`: a warm worker (worker.py) in a Slurm job, connected back to the backend.

    damnit_shim.py remote-worker --connect HOST:PORT --token-file PATH

Connects to the backend's TCP port and introduces itself with one line,

    {"protocol": 1, "kind": "worker_attach", "token": "<32 hex>", "job_id": "4711", "host": "node1"}

the token read from a file only the user can read (a command line is visible to every user of
the cluster). From then on the connection is the worker's stdin (requests) and its channel
(hello, worker_ready, child_started, child_exited...), exactly as a local worker's pipes; each
run's child connects to the same port with its run's token (worker.py). The connection's end,
from either side, ends the worker and so the job.
"""
import json
import os
import socket
import sys

from _damnit_shim.shim_channel import PROTOCOL_VERSION, Channel

USAGE = "usage: damnit_shim.py remote-worker --connect HOST:PORT --token-file PATH\n"


def main(argv):
    if len(argv) != 4 or argv[0] != "--connect" or argv[2] != "--token-file":
        sys.stderr.write(USAGE)
        return 2
    host, _, port = argv[1].rpartition(":")
    if not host or not port.isdigit():
        sys.stderr.write(USAGE)
        return 2
    with open(argv[3]) as f:
        token = f.read().strip()
    conn = socket.create_connection((host, int(port)))
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    attach = {"protocol": PROTOCOL_VERSION, "kind": "worker_attach", "token": token,
              "job_id": os.environ.get("SLURM_JOB_ID", ""), "host": socket.gethostname()}
    conn.sendall((json.dumps(attach) + "\n").encode())
    fd = conn.detach()
    # Requests arrive on stdin, as for a local worker; the channel writes to the same connection.
    os.dup2(fd, 0)
    channel = Channel("fd:%d" % fd)
    channel.hello()
    from _damnit_shim import worker
    return worker.serve(channel, fd, "tcp:%s:%s" % (host, port))

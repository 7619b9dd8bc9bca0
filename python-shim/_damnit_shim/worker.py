"""`worker`: a fork server that runs many runs in one warm interpreter.

    damnit_shim.py --channel fd:3 worker --socket PATH

Imports the heavy modules contexts use (numpy, h5py, pandas, xarray, extra_data, matplotlib
with the Agg backend, h5netcdf: each only if importable) and the shim's own modules once, says
`worker_ready`, then reads requests from stdin, one JSON object per line:

    {"protocol": 1, "kind": "run", "id": 7, "token": "<32 hex>", "cwd": "/db/dir", "argv": [...]}

For each request a child runs `runner.main` with `argv`, exactly as `damnit_shim.py run ARGV`
would; the worker says `child_started` (id, pid) and, once the child is reaped, `child_exited`
(id, pid, code or signal). A `stop` request,

    {"protocol": 1, "kind": "stop", "id": 7, "signal": "SIGTERM"}

sends the signal (SIGTERM or SIGKILL) to the group of request 7's child, if it still runs: a
run cancelled in a worker on another node (slurm-workers.ts), the worker kept. The child is forked ahead of time while the worker is idle (the
"spare", waiting on a pipe for its request), so a request does not wait for a fork; a second
request at once gets a child forked on the spot. A spare connects to PATH before its request
comes, and has the kernel copy the pages that runs write (prefault.py: as an earlier child
noted them) while it waits; a request that comes before that is done gets a child forked on
the spot instead of waiting. The child:
- leads its own process group, so a run's time limit stops that child and whatever it
  started, never the worker;
- opens three connections to the orchestrator's Unix socket PATH, each introduced by an
  `attach` line with the request's token: `channel` (its protocol messages, so concurrent
  children never share a stream), `stdout` and `stderr` (its fds 1 and 2, which what the
  context starts inherits);
- loads the context file itself, so an edit takes effect for the next run;
- dies with the worker (PR_SET_PDEATHSIG on Linux);
- ends what the context started and left running before it exits (leftovers.py).
The worker itself adopts what a child killed before its end leaves orphaned, and kills it.

The worker ends on end of stdin or SIGTERM, after stopping children still running.

Its parts: worker_warm_up.py (preload and warm-up), worker_requests.py (requests),
fork_server.py (children: forking, reaping, running a request), worker_address.py (where
children connect).
"""
import gc
import os
import signal
import sys
import time

from _damnit_shim.fork_server import Worker, exit_on_sigterm
from _damnit_shim.worker_address import scratch_dir
from _damnit_shim.worker_warm_up import preload, warm_up


def _channel_fd():
    """The fd of the worker's own channel (`--channel fd:N`), which children must not hold."""
    try:
        kind, _, target = sys.argv[sys.argv.index("--channel") + 1].partition(":")
        return int(target) if kind == "fd" else None
    except (ValueError, IndexError):
        return None


def main(channel, argv):
    if len(argv) != 2 or argv[0] != "--socket":
        sys.stderr.write("usage: damnit_shim.py --channel fd:N worker --socket PATH\n")
        return 2
    return serve(channel, _channel_fd(), argv[1])


def serve(channel, channel_fd, address):
    """Preloads, warms up and serves requests from stdin until its end; children connect to
    `address` (see worker_address.connect). `channel_fd`: the channel's fd, which children must
    not hold."""
    started = time.perf_counter()
    # Stopped while warming up, the worker still removes its warm-up directory on the way out.
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    imported, unavailable = preload()
    if "_damnit_shim.runner" in imported:
        # Under the orchestrator's temporary directory (that of the socket), which it removes
        # even when the worker is killed.
        warm_up(scratch_dir(address))
    # What the worker holds now stays shared with every child: frozen objects are left out of
    # the children's garbage collections, which would otherwise touch (and copy) their pages.
    gc.collect()
    gc.freeze()
    channel.send("worker_ready", pid=os.getpid(), preloaded=imported, unavailable=unavailable,
                 seconds=time.perf_counter() - started)
    try:
        return Worker(channel, channel_fd, address).serve()
    except SystemExit as e:
        return e.code

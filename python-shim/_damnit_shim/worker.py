"""`worker`: a fork server that runs many runs in one warm interpreter.

    damnit_shim.py --channel fd:3 worker --socket PATH

Imports the heavy modules contexts use (numpy, h5py, pandas, xarray, extra_data, matplotlib
with the Agg backend, h5netcdf: each only if importable) and the shim's own modules once, says
`worker_ready`, then reads requests from stdin, one JSON object per line:

    {"protocol": 1, "kind": "run", "id": 7, "token": "<32 hex>", "cwd": "/db/dir", "argv": [...]}

For each request a child runs `runner.main` with `argv`, exactly as `damnit_shim.py run ARGV`
would; the worker says `child_started` (id, pid) and, once the child is reaped, `child_exited`
(id, pid, code or signal). The child is forked ahead of time while the worker is idle (the
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
"""
import atexit
import gc
import importlib
import json
import logging
import os
import selectors
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback

from _damnit_shim import leftovers, prefault
from _damnit_shim.spare import Spare, read_request
from _damnit_shim.shim_channel import PROTOCOL_VERSION, Channel

# Imported once in the worker, in this order, when importable. xarray.core.groupby is one of
# xarray's lazy imports that a run of the sample context would otherwise pay in every child.
PRELOAD = ("numpy", "h5py", "pandas", "xarray", "xarray.core.groupby", "extra_data", "h5netcdf",
           "matplotlib")
# The shim's modules a run imports (runner imports the rest).
SHIM_MODULES = ("_damnit_shim.runner",)
# Between SIGTERM and SIGKILL for children still running when the worker stops.
STOP_GRACE_S = 2.0
ATTACH_STREAMS = ("channel", "stdout", "stderr")
# One child in this many notes the pages it wrote, for the spares after it (prefault.py).
PAGES_EVERY = 50


# A mock run of this context in the worker itself, before any fork: what every run does the
# first time (numpy, h5py, xarray and h5netcdf's lazy imports, compiled regular expressions,
# extra_data adapted, thumbnails) is then done once, not in every child.
WARM_UP_CONTEXT = '''
import numpy as np
import xarray as xr
from damnit_ctx import Cell, Variable

@Variable(title="Scalar", units="uJ")
def scalar(run):
    return 1.5

@Variable(title="Trace", summary="mean")
def trace(run, factor: "var#scalar"):
    return xr.DataArray(np.arange(20.0) * factor, dims=["trainId"], coords={"trainId": np.arange(20)})

@Variable(title="Line")
def line(run):
    return np.linspace(0, 1, 50)

@Variable(title="Image")
def image(run):
    return np.outer(np.arange(64.0), np.arange(48.0))

@Variable(title="Text")
def text(run, n: "meta#run_number"):
    return Cell("run %d" % n, bold=True, background="#ffcc00")
'''


class RequestError(Exception):
    pass


def preload():
    """(imported, unavailable) module names."""
    imported, unavailable = [], []
    for name in PRELOAD:
        try:
            if name == "matplotlib":
                import matplotlib
                # No display in a worker; an MPLBACKEND the user set still wins.
                if "MPLBACKEND" not in os.environ:
                    matplotlib.use("Agg")
                import matplotlib.pyplot  # noqa: F401
            else:
                importlib.import_module(name)
            imported.append(name)
        except ImportError:
            unavailable.append(name)
        except Exception as e:
            # A broken package: the runs that use it will say so; the worker goes on.
            sys.stderr.write("worker: importing %s failed: %s: %s\n" % (name, type(e).__name__, e))
            unavailable.append(name)
    for name in SHIM_MODULES:
        try:
            importlib.import_module(name)
            imported.append(name)
        except ImportError:
            # numpy or h5py missing: each child reports it as its run's fatal error.
            unavailable.append(name)
    return imported, unavailable


def warm_up(parent=None):
    """Runs WARM_UP_CONTEXT on a mock run here, leaving no trace but warm caches, in a
    directory made under `parent` (default: the system's temporary directory). True if it went
    well; a failure only costs speed."""
    from _damnit_shim import runner
    from _damnit_shim.context_loader import CONTEXT_MODULE_NAME
    # The owner's pid in the name: what a worker killed with SIGKILL leaves, the orchestrator
    # removes at its next start (src/temp-dirs.ts).
    directory = tempfile.mkdtemp(prefix="damnit-warm-up-%d-" % os.getpid(), dir=parent)
    path_before = list(sys.path)
    try:
        context = os.path.join(directory, "context.py")
        with open(context, "w") as f:
            f.write(WARM_UP_CONTEXT)
        # runner.main configures logging as it does in every run; the warm-up's lines are no
        # one's business.
        logging.disable(logging.CRITICAL)
        code = runner.main(Channel("file:" + os.devnull), [
            context, "--proposal", "1", "--run", "1", "--run-data", "all", "--mock",
            "--proposal-path", directory, "--out", os.path.join(directory, "p1_r1.h5")])
        return code == 0
    except Exception as e:
        sys.stderr.write("worker: warm-up run failed: %s: %s\n" % (type(e).__name__, e))
        return False
    finally:
        logging.disable(logging.NOTSET)
        sys.modules.pop(CONTEXT_MODULE_NAME, None)
        sys.path[:] = path_before
        shutil.rmtree(directory, ignore_errors=True)


def parse_request(line):
    try:
        request = json.loads(line)
    except ValueError:
        raise RequestError("request is not JSON: %s" % line[:200])
    if not isinstance(request, dict):
        raise RequestError("request is not an object: %s" % line[:200])
    if request.get("protocol") != PROTOCOL_VERSION:
        raise RequestError("request speaks protocol %r, this worker speaks %d"
                           % (request.get("protocol"), PROTOCOL_VERSION))
    if request.get("kind") != "run":
        raise RequestError("unknown request kind %r" % request.get("kind"))
    checks = {
        "id": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
        "token": lambda v: isinstance(v, str) and len(v) == 32
        and all(c in "0123456789abcdef" for c in v),
        "cwd": lambda v: isinstance(v, str) and v != "",
        "argv": lambda v: isinstance(v, list) and all(isinstance(a, str) for a in v),
    }
    for field, valid in checks.items():
        if not valid(request.get(field)):
            raise RequestError("request field %r is missing or invalid" % field)
    return request


def request_id(line):
    """The id of a request that failed validation, if it has a usable one."""
    try:
        value = json.loads(line).get("id")
    except Exception:
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class Worker:
    def __init__(self, channel, channel_fd, socket_path):
        self.channel = channel
        self.channel_fd = channel_fd
        self.socket_path = socket_path
        self.children = {}  # pid -> request id; None for the spare
        # A child forked ahead of the next request and waiting for it: (pid, request pipe).
        self.spare = None
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        # Looked up once here rather than in every child.
        self.set_death_signal = _death_signal_setter()
        # In a child: the fds of its connections to the orchestrator.
        self.run_fds = []
        # In a spare: its connections, opened before its request came.
        self.early_connections = None
        # The pages a run writes, as a child noted them (prefault.py); None before any did.
        self.hot_pages = None
        self.forks = 0
        # In a child: whether it notes the pages it wrote, once its run is over.
        self.notes_pages = False

    def serve(self):
        leftovers.adopt_orphans()
        # SIGCHLD wakes the select loop through the wakeup fd; the handler itself does nothing.
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        self.selector.register(0, selectors.EVENT_READ, "requests")
        self.selector.register(self.wake_r, selectors.EVENT_READ, "wake")
        pending = b""
        try:
            while True:
                self.reap(block=False)
                # Forked while idle, so that the next request finds its child waiting.
                if self.spare is None:
                    self.spare = self.fork_spare()
                for key, _ in self.selector.select():
                    if key.data == "wake":
                        _drain(self.wake_r)
                        continue
                    data = os.read(0, 65536)
                    if not data:
                        return 0
                    pending += data
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        if line.strip():
                            self.handle(line.decode("utf-8", "replace"))
        finally:
            self.stop_children()

    def handle(self, line):
        try:
            request = parse_request(line)
        except RequestError as e:
            self.channel.send("request_refused", id=request_id(line), message=str(e))
            return
        pid = self.hand_to_spare(request)
        if pid is None:
            pid = self.fork_child(request)
        if pid is not None:
            self.children[pid] = request["id"]
            self.channel.send("child_started", id=request["id"], pid=pid)

    def hand_to_spare(self, request):
        """The spare's pid once it has the request; None without a (live) spare, or while it
        is still preparing (a child forked on the spot is sooner there)."""
        spare = self.spare
        if spare is None or not spare.ready():
            return None
        self.spare = None
        try:
            # At most a few kilobytes: the pipe takes it whole, and the spare reads to the end.
            os.write(spare.request_pipe, json.dumps(request).encode())
            return spare.pid
        except OSError:
            _signal_group(spare.pid, signal.SIGKILL)  # it died or is dying: fork afresh instead
            return None
        finally:
            spare.close()

    def fork_child(self, request):
        """Forks a child for the request; its pid, or None (refused) if fork failed."""
        pid = self._fork(request["id"])
        if pid == 0:
            self.become_child(lambda: request)  # never returns
        return pid

    def fork_spare(self):
        """Forks the child that the next request will be handed to (a Spare), or None."""
        read_end, write_end = os.pipe()
        prepare = bool(self.hot_pages) and not self._notes_pages_next()
        ready_r, ready_w = os.pipe() if prepare else (None, None)
        pid = self._fork(None)
        if pid == 0:
            os.close(write_end)
            if ready_r is not None:
                os.close(ready_r)

            def get_request():
                self.early_connections = self._open_connections()
                if ready_w is not None:
                    prefault.populate(self.hot_pages)
                    os.write(ready_w, b"r")
                    os.close(ready_w)
                return read_request(read_end)
            self.become_child(get_request)  # never returns
        os.close(read_end)
        if ready_w is not None:
            os.close(ready_w)
        if pid is None:
            os.close(write_end)
            if ready_r is not None:
                os.close(ready_r)
            return None
        self.children[pid] = None
        return Spare(pid, write_end, ready_r)

    def _notes_pages_next(self):
        """Whether the next child forked notes the pages it wrote (prefault.py): the first, and
        one in PAGES_EVERY after it, so that the pages follow the context as it changes. Not in
        a worker reached over TCP: it has no directory of the orchestrator's to leave them in."""
        if _scratch_dir(self.socket_path) is None:
            return False
        return self.hot_pages is None or self.forks % PAGES_EVERY == 0

    def _fork(self, request_id):
        sys.stdout.flush()
        sys.stderr.flush()
        self.notes_pages = self._notes_pages_next()
        self.forks += 1
        try:
            pid = os.fork()
        except OSError as e:
            if request_id is not None:
                self.channel.send("request_refused", id=request_id,
                                  message="cannot fork a child: %s" % e)
            return None
        if pid != 0:
            try:
                # Also done in the child: whichever runs first, the group exists before
                # anyone signals it.
                os.setpgid(pid, pid)
            except OSError:
                pass  # the child made it already, or has ended: both fine
        return pid

    def reap(self, block):
        while self.children:
            try:
                pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid not in self.children:
                # An orphan of a run adopted and killed by end_strays: its own children may be
                # orphans now.
                self.end_strays()
                continue
            if os.WIFSIGNALED(status):
                self.end_strays()  # a child killed before its end left its processes to us
            request = self.children.pop(pid)
            self._take_pages(pid)
            if self.spare is not None and self.spare.pid == pid:
                self.spare.close()
                self.spare = None
            if request is not None:
                code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
                sig = signal.Signals(os.WTERMSIG(status)).name if os.WIFSIGNALED(status) else None
                try:
                    self.channel.send("child_exited", id=request, pid=pid, code=code, signal=sig)
                except OSError:
                    pass  # the orchestrator is gone
            if block:
                return

    def end_strays(self):
        """Kills the processes adopted from runs (leftovers.py): every child that is not a
        run's. Their own children come to us in turn when they die, and are killed then."""
        for pid in leftovers.children(os.getpid()):
            if pid not in self.children:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass

    def stop_children(self):
        """SIGTERM to each child's group, SIGKILL after STOP_GRACE_S."""
        for pid in self.children:
            _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        while self.children and time.monotonic() < deadline:
            self.reap(block=False)
            time.sleep(0.02)
        for pid in list(self.children):
            _signal_group(pid, signal.SIGKILL)
        while self.children:
            self.reap(block=True)

    def become_child(self, get_request):
        """Runs a request in this forked child and exits; never returns into the worker.
        `get_request` gives the request, waiting for it in a spare."""
        code = 1
        try:
            self._prepare_child()
            code = self._run(get_request())
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:
            traceback.print_exc()
        finally:
            # What a fresh interpreter does on its way out (h5py closing files the context left
            # open, the user's own handlers), short of unwinding into the worker's frames.
            try:
                atexit._run_exitfuncs()
            except BaseException:
                pass
            # What the context started and left running ends with its run (leftovers.py).
            try:
                leftovers.end_leftovers()
            except BaseException:
                pass
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except Exception:
                    pass
            # Closed now, the connections tell the orchestrator the run is over; closed by the
            # exit, they would wait until the kernel has torn down this big address space.
            for fd in self.run_fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
            if self.notes_pages:
                try:
                    self._note_pages()
                except BaseException:
                    pass
            os._exit(code if isinstance(code, int) else 1)

    def _pages_file(self, pid):
        return os.path.join(_scratch_dir(self.socket_path), "pages-%d" % pid)

    def _note_pages(self):
        """Leaves the pages this child wrote for the worker (taken when it reaps us)."""
        prefault.save_ranges(self._pages_file(os.getpid()), prefault.written_ranges())

    def _take_pages(self, pid):
        """The pages child `pid` noted, if it did: they replace what the worker knew."""
        if _scratch_dir(self.socket_path) is None:
            return
        ranges = prefault.take_ranges(self._pages_file(pid))
        if ranges is not None:
            self.hot_pages = ranges

    def _prepare_child(self):
        """What does not depend on the request: group, signals, the worker's fds, randomness."""
        worker_pid = os.getppid()
        os.setpgid(0, 0)
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGCHLD, signal.SIGTERM):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if self.set_death_signal is not None:
            self.set_death_signal()
        leftovers.adopt_orphans()
        if os.getppid() != worker_pid:
            os._exit(1)  # the worker died before the line above took effect
        # Nothing of the worker's stays open here: its requests, its channel, its loop, an
        # earlier spare's request pipe.
        self.selector.close()
        os.close(self.wake_r)
        os.close(self.wake_w)
        if self.channel_fd is not None:
            os.close(self.channel_fd)
        if self.spare is not None:
            self.spare.close()
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        _reseed_random()

    def _open_connections(self):
        """The three connections to the orchestrator, not yet introduced. The orchestrator
        takes them as they come and waits for their `attach` line."""
        connections = {}
        for stream in ATTACH_STREAMS:
            connections[stream] = _connect(self.socket_path)
        return connections

    def _run(self, request):
        # A spare opened them while it waited.
        connections = self.early_connections or self._open_connections()
        for stream, conn in connections.items():
            attach = {"protocol": PROTOCOL_VERSION, "kind": "attach",
                      "token": request["token"], "stream": stream}
            conn.sendall((json.dumps(attach) + "\n").encode())
        for stream, fd in (("stdout", 1), ("stderr", 2)):
            conn_fd = connections.pop(stream).detach()
            os.dup2(conn_fd, fd)
            os.close(conn_fd)
        channel_socket = connections.pop("channel")
        self.run_fds = [channel_socket.fileno(), 1, 2]

        os.chdir(request["cwd"])
        channel = Channel("fd:%d" % channel_socket.fileno())
        channel.hello()
        shim_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        sys.argv = [os.path.join(shim_dir, "damnit_shim.py"),
                    "--channel", "fd:%d" % channel_socket.fileno(), "run"] + request["argv"]
        try:
            from _damnit_shim import runner
        except ImportError as e:
            from _damnit_shim.missing_packages import missing_package_message
            channel.send("fatal", traceback=None, message=missing_package_message(e))
            return 1
        return runner.main(channel, request["argv"])


def _scratch_dir(address):
    """Where the worker's own files go: the directory of the orchestrator's Unix socket (its own
    temporary directory, removed with it even when the worker is killed), or None (the system's
    temporary directory) for a worker in a Slurm job, reached over TCP."""
    return None if address.startswith("tcp:") else os.path.dirname(address)


def _connect(address):
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


def _channel_fd():
    """The fd of the worker's own channel (`--channel fd:N`), which children must not hold."""
    try:
        kind, _, target = sys.argv[sys.argv.index("--channel") + 1].partition(":")
        return int(target) if kind == "fd" else None
    except (ValueError, IndexError):
        return None


def _exit_on_sigterm(signum, frame):
    raise SystemExit(0)


def _drain(fd):
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def _signal_group(pgid, signum):
    try:
        os.killpg(pgid, signum)
    except OSError:
        pass


def _death_signal_setter():
    """A function that makes the calling process get SIGKILL when its parent ends, however it
    ends (Linux only; None elsewhere)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except Exception:
        return None
    pr_set_pdeathsig = 1
    return lambda: prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)


def _reseed_random():
    """A forked child inherits the worker's random state: give it its own, as a fresh
    interpreter would have. (`random` reseeds itself after fork; numpy does not.)"""
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()


def main(channel, argv):
    if len(argv) != 2 or argv[0] != "--socket":
        sys.stderr.write("usage: damnit_shim.py --channel fd:N worker --socket PATH\n")
        return 2
    return serve(channel, _channel_fd(), argv[1])


def serve(channel, channel_fd, address):
    """Preloads, warms up and serves requests from stdin until its end; children connect to
    `address` (see _connect). `channel_fd`: the channel's fd, which children must not hold."""
    started = time.perf_counter()
    # Stopped while warming up, the worker still removes its warm-up directory on the way out.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    imported, unavailable = preload()
    if "_damnit_shim.runner" in imported:
        # Under the orchestrator's temporary directory (that of the socket), which it removes
        # even when the worker is killed.
        warm_up(_scratch_dir(address))
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

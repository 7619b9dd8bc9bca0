"""The warm worker's fork server (worker.py): forks a child per request (or hands the request
to the spare forked ahead of it), reaps children and reports their ends, and runs the request
in the child."""
import atexit
import json
import os
import selectors
import signal
import sys
import time
import traceback

from _damnit_shim import leftovers, prefault
from _damnit_shim.shim_channel import PROTOCOL_VERSION, Channel
from _damnit_shim.spare import Spare, read_request
from _damnit_shim.worker_address import connect, scratch_dir
from _damnit_shim.worker_requests import STOP_SIGNALS, RequestError, parse_request, request_id

# Between SIGTERM and SIGKILL for children still running when the worker stops.
STOP_GRACE_S = 2.0
ATTACH_STREAMS = ("channel", "stdout", "stderr")
# One child in this many notes the pages it wrote, for the spares after it (prefault.py).
PAGES_EVERY = 50


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
        signal.signal(signal.SIGTERM, exit_on_sigterm)
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
        if request["kind"] == "stop":
            for pid, run_id in self.children.items():
                if run_id == request["id"]:
                    _signal_group(pid, STOP_SIGNALS[request["signal"]])
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
        if scratch_dir(self.socket_path) is None:
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
        return os.path.join(scratch_dir(self.socket_path), "pages-%d" % pid)

    def _note_pages(self):
        """Leaves the pages this child wrote for the worker (taken when it reaps us)."""
        prefault.save_ranges(self._pages_file(os.getpid()), prefault.written_ranges())

    def _take_pages(self, pid):
        """The pages child `pid` noted, if it did: they replace what the worker knew."""
        if scratch_dir(self.socket_path) is None:
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
            connections[stream] = connect(self.socket_path)
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


def exit_on_sigterm(signum, frame):
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


"""The processes a run leaves behind end with the run.

A variable may start processes (`subprocess.Popen(["sleep", "100"])`, a daemon that forks
twice and leaves its session) and return without waiting for them. They would hold the run's
output open, keep the command waiting, and run on unseen on a shared host. So the process
that runs a context makes itself a "child subreaper" (Linux): whatever its descendants leave
orphaned is re-parented to it rather than to init, daemons included, and at the end of the
run `end_leftovers` kills every descendant still there with SIGKILL. A run that needs a
service beyond its own end must have it started outside the context.

Elsewhere than on Linux only the run's process group is ended (by the orchestrator).
"""
import os
import signal
import sys

PR_SET_CHILD_SUBREAPER = 36
# Rounds of "find, kill, reap": a descendant forking while it is being killed needs another.
ROUNDS = 20


def adopt_orphans():
    """Makes this process the one orphaned descendants are re-parented to. False where the
    system cannot (not Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes
        prctl = ctypes.CDLL(None, use_errno=True).prctl
        return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except Exception:
        return False


def _parents():
    """{pid: parent pid} of every process this one can see in /proc."""
    parents = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return parents
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry, "rb") as f:
                stat = f.read()
        except OSError:
            continue  # ended meanwhile
        # `pid (comm) state ppid ...`; comm may itself hold spaces and parentheses.
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 1:
            parents[int(entry)] = int(fields[1])
    return parents


def descendants(pid):
    """The pids of every living descendant of `pid` (zombies included)."""
    children = {}
    for child, parent in _parents().items():
        children.setdefault(parent, []).append(child)
    found, todo = [], list(children.get(pid, ()))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(children.get(child, ()))
    return found


def _reap_all():
    """Collects every ended child of this process, without waiting for living ones."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def has_children():
    """Whether this process has a child, living or not yet reaped. Cheap: as a subreaper,
    without a child it has no descendant at all."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        return True
    except ChildProcessError:
        return False


def children(pid):
    """The pids of the living children of `pid`."""
    return [child for child, parent in _parents().items() if parent == pid and _is_running(child)]


def end_leftovers():
    """Kills every descendant of this process and reaps them. The number killed."""
    if not has_children():
        return 0  # the usual case, without reading /proc
    me = os.getpid()
    killed = set()
    for _ in range(ROUNDS):
        _reap_all()
        alive = [pid for pid in descendants(me) if _is_running(pid)]
        if not alive:
            break
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except OSError:
                pass
        # Our own children's ends come to us; a killed grandchild's end goes to its parent, or
        # (its parent killed too) to us as its subreaper. Waiting for one child is enough to
        # let the kills take effect before looking again.
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            pass
    _reap_all()
    return len(killed)


def _is_running(pid):
    """False for a zombie (already ended, waiting to be reaped) or a process gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            stat = f.read()
    except OSError:
        return False
    fields = stat[stat.rfind(b")") + 2:].split()
    return bool(fields) and fields[0] != b"Z"

"""The staging files of a run file's writers (h5writer.py): where each is, whether it is
consistent, the stagings of writers that died that a commit applies, the marks it leaves for
`salvage`, and the run's lock."""
import contextlib
import fcntl
import glob
import logging
import os
import socket
import time

import h5py

log = logging.getLogger("ctxrunner")

TEMP_MARK = ".writing-"
CONSISTENT_MARK = ".ok"
# Left by a commit that applied a dead writer's staging, for `salvage` of that writer to find.
APPLIED_MARK = ".applied"
# Marks no salvage came for (its orchestrator was killed too) are removed after this long.
APPLIED_MARK_KEPT_S = 3600


def run_lock_path(path):
    directory, base = os.path.split(os.path.abspath(path))
    return os.path.join(directory, "." + base + ".lock")


@contextlib.contextmanager
def run_locked(path):
    """Holds the run's exclusive lock (waiting for it) for the duration of the block."""
    fd = os.open(run_lock_path(path), os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def unlink_if_present(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def staging_path(path, pid):
    """The staging file of the writer `pid` on this host for the run file `path`."""
    return "%s%s%s-%d" % (os.path.abspath(path), TEMP_MARK, socket.gethostname(), pid)


def take_applied_mark(staging):
    """Whether a commit has applied `staging` (its writer died); forgets it."""
    try:
        os.unlink(staging + APPLIED_MARK)
        return True
    except FileNotFoundError:
        return False


def remove_staging(staging):
    unlink_if_present(staging)
    unlink_if_present(staging + CONSISTENT_MARK)


def adoptable_stagings(path, exclude):
    """Staging files of writers on this host that died, oldest first, that are consistent;
    inconsistent ones (killed while changing them) are removed."""
    host = socket.gethostname()
    prefix = path + TEMP_MARK + host + "-"
    found = []
    for staging in glob.glob(glob.escape(path) + TEMP_MARK + "*"):
        if staging.endswith(APPLIED_MARK):
            _remove_old_mark(staging)
            continue
        if staging == exclude or staging.endswith(CONSISTENT_MARK) or not staging.startswith(prefix):
            continue
        pid = staging[len(prefix):]
        if not pid.isdigit() or _process_alive(int(pid)):
            continue
        if os.path.exists(staging + CONSISTENT_MARK) and _readable(staging):
            found.append((os.path.getmtime(staging), staging))
        else:
            log.warning("Removing %s, left incomplete by a writer that was stopped", staging)
            remove_staging(staging)
    return [staging for _, staging in sorted(found)]


def _remove_old_mark(mark):
    try:
        if time.time() - os.path.getmtime(mark) > APPLIED_MARK_KEPT_S:
            os.unlink(mark)
    except OSError:
        pass


def _readable(path):
    try:
        with h5py.File(path, "r"):
            return True
    except OSError:
        return False


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fsync_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

"""The per-run HDF5 file `extracted_data/p<P>_r<R>.h5` (contract section 4).

    writer = RunFileWriter(path)
    failure = writer.add(name, result=..., summary=...)   # or error=...; one variable
    writer.commit(start_time)                             # into the run's file

Layout:
    /                  attr provenance="context.py", as the reference's files
    /.reduced/<name>   summary, attrs summary_method, units, bold, background, max_diff, summary_type
    /.preview/<name>   optional preview
    /.errors/<name>    error message, attr type=<exception class>
    /<name>/data       full result, stored plain; xarray objects as NetCDF4 groups (their
                       variables gzip-compressed, as the reference's) with attr _damnit_objtype
    /start_time/data   and /.reduced/start_time

Each variable is staged as soon as it is computed, in this writer's own file next to the run's
(`<path>.writing-<host>-<pid>`), flushed, and marked consistent (`<staging>.ok`) until the next
change begins. A commit takes the run's lock (`.<file>.lock` next to it: an fcntl lock, which
works on network file systems and which the kernel releases when its holder dies), adds to the
staging file every entry of the current run file it does not replace, and renames it over the
run file: one writer at a time, each applying its changes to the file as it is then. A
writer that died (killed, timed out) leaves a consistent staging file behind: the next commit
of that run, or `salvage`, applies it before its own changes, so what it computed is kept. A
kill at any moment leaves the run's file readable.

Its parts: h5_entries.py (a variable's entries), h5_copy.py (a commit's merge), run_staging.py
(staging files, the run's lock).
"""
import contextlib
import logging
import os
import signal
import threading

import h5py

from _damnit_shim.h5_copy import copy_other_entries
from _damnit_shim.h5_entries import (
    SPECIAL_GROUPS, StoreError, is_xarray, remove_entries, write_error, write_netcdf, write_result,
    write_start_time,
)
from _damnit_shim.run_staging import (
    APPLIED_MARK, CONSISTENT_MARK, adoptable_stagings, fsync_path, remove_staging, run_locked,
    staging_path, unlink_if_present,
)
from _damnit_shim.results import is_dataarray

log = logging.getLogger("ctxrunner")

PROVENANCE = "context.py"


@contextlib.contextmanager
def _sigterm_deferred():
    """A SIGTERM (time limit, cancel) that arrives while a file is being changed takes effect
    once the change is complete, so that it never leaves a staging file half written."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        if pending:
            os.kill(os.getpid(), signal.SIGTERM)


class RunFileWriter:
    """The changes of one writer (a run, or salvage) to one run's file."""

    def __init__(self, path):
        self.path = os.path.abspath(path)
        self.directory = os.path.dirname(self.path)
        self.staging = staging_path(self.path, os.getpid())
        self._file = None
        self._started = False
        self.names = set()  # the entries this writer replaces

    def _open(self):
        if self._file is None:
            mode = "r+" if self._started else "w"
            if not self._started:
                os.makedirs(self.directory, exist_ok=True)
                self._started = True
            self._file = h5py.File(self.staging, mode)
            if mode == "w":
                self._file.attrs["provenance"] = PROVENANCE
                for group in SPECIAL_GROUPS:
                    self._file.require_group(group)
        return self._file

    def _close(self):
        if self._file is not None:
            self._file.close()
            self._file = None

    def _mark(self, consistent):
        mark = self.staging + CONSISTENT_MARK
        if consistent:
            os.close(os.open(mark, os.O_WRONLY | os.O_CREAT, 0o666))
        else:
            unlink_if_present(mark)

    def add(self, name, result=None, summary=None, error=None):
        """Stages one variable: its result (and summary), or its error. Returns the
        StoreError written instead of a result HDF5 or NetCDF refused, else None."""
        failure = None
        with _sigterm_deferred():
            if self._started:
                self._mark(False)
            f = self._open()
            remove_entries(f, name)
            self.names.add(name)
            if error is None:
                try:
                    write_result(f, name, result, summary)
                    if is_xarray(result.data) or is_dataarray(result.preview):
                        self._close()
                        failure = write_netcdf(self.staging, {name: result}).get(name)
                except Exception as e:
                    failure = StoreError("Result could not be saved: %s: %s"
                                         % (type(e).__name__, e))
                if failure is not None:
                    log.error("Could not save %s: %s", name, failure)
                    f = self._open()
                    remove_entries(f, name)
                    error = failure
            if error is not None:
                write_error(self._open(), name, error)
            if self._file is not None:  # else closed by the NetCDF write, which flushed it
                self._file.flush()
            self._mark(True)
        return failure

    def commit(self, start_time=None, before_merge=None):
        """Applies the staged changes (and those of writers that died before theirs) to the
        run's file, under the run's lock; returns the stagings applied. `before_merge(adopted)`
        may stage more under the lock, knowing which stagings of dead writers are applied."""
        with _sigterm_deferred():
            if self._started:
                self._mark(False)
            f = self._open()
            if start_time is not None:
                remove_entries(f, "start_time")
                write_start_time(f, start_time)
                self.names.add("start_time")
            with run_locked(self.path):
                adopted = adoptable_stagings(self.path, exclude=self.staging)
                if before_merge is not None:
                    before_merge(adopted)
                    self._mark(False)  # the merge below changes the staging again
                taken = set(self.names)
                dest = self._open()
                for source in adopted + [self.path]:
                    taken |= copy_other_entries(source, dest, taken)
                self._close()
                fsync_path(self.staging)
                # Its mode and group come from the umask and the setgid directory, as the
                # database directory's sharing says (the orchestrator's umask, inherited).
                os.replace(self.staging, self.path)
                fsync_path(self.directory)
                for stale in adopted:
                    remove_staging(stale)
                    os.close(os.open(stale + APPLIED_MARK, os.O_WRONLY | os.O_CREAT, 0o666))
            unlink_if_present(self.staging + CONSISTENT_MARK)
        return adopted

    def abort(self):
        self._close()
        remove_staging(self.staging)

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
"""
import contextlib
import fcntl
import glob
import logging
import os
import signal
import socket
import threading
import time

import h5py
import numpy as np

from _damnit_shim.results import (
    OBJTYPE_ATTR, PNG, error_message, figure_rgba, is_dataarray, is_dataset, is_mpl_figure,
    is_plotly_figure, plotly_json_bytes,
)

log = logging.getLogger("ctxrunner")

SPECIAL_GROUPS = (".reduced", ".preview", ".errors")
PROVENANCE = "context.py"
# For NetCDF variables only: plain arrays read several times faster (docs/context-file.md).
COMPRESSION = {"compression": "gzip", "compression_opts": 1, "shuffle": True}
TEMP_MARK = ".writing-"
CONSISTENT_MARK = ".ok"
# Left by a commit that applied a dead writer's staging, for `salvage` of that writer to find.
APPLIED_MARK = ".applied"
# Marks no salvage came for (its orchestrator was killed too) are removed after this long.
APPLIED_MARK_KEPT_S = 3600


class StoreError(TypeError):
    """A result that passed validation but that HDF5 or NetCDF refused to store."""


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
            _unlink(mark)

    def add(self, name, result=None, summary=None, error=None):
        """Stages one variable: its result (and summary), or its error. Returns the
        StoreError written instead of a result HDF5 or NetCDF refused, else None."""
        failure = None
        with _sigterm_deferred():
            if self._started:
                self._mark(False)
            f = self._open()
            _remove_entries(f, name)
            self.names.add(name)
            if error is None:
                try:
                    _write_result(f, name, result, summary)
                    if _is_xarray(result.data) or is_dataarray(result.preview):
                        self._close()
                        failure = _write_netcdf(self.staging, {name: result}).get(name)
                except Exception as e:
                    failure = StoreError("Result could not be saved: %s: %s"
                                         % (type(e).__name__, e))
                if failure is not None:
                    log.error("Could not save %s: %s", name, failure)
                    f = self._open()
                    _remove_entries(f, name)
                    error = failure
            if error is not None:
                _write_error(self._open(), name, error)
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
                _remove_entries(f, "start_time")
                _write_start_time(f, start_time)
                self.names.add("start_time")
            with run_locked(self.path):
                adopted = _adoptable_stagings(self.path, exclude=self.staging)
                if before_merge is not None:
                    before_merge(adopted)
                    self._mark(False)  # the merge below changes the staging again
                taken = set(self.names)
                dest = self._open()
                for source in adopted + [self.path]:
                    taken |= _copy_other_entries(source, dest, taken)
                self._close()
                _fsync_path(self.staging)
                # Its mode and group come from the umask and the setgid directory, as the
                # database directory's sharing says (the orchestrator's umask, inherited).
                os.replace(self.staging, self.path)
                _fsync_path(self.directory)
                for stale in adopted:
                    _remove_staging(stale)
                    os.close(os.open(stale + APPLIED_MARK, os.O_WRONLY | os.O_CREAT, 0o666))
            _unlink(self.staging + CONSISTENT_MARK)
        return adopted

    def abort(self):
        self._close()
        _remove_staging(self.staging)


def _unlink(path):
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


def _remove_staging(staging):
    _unlink(staging)
    _unlink(staging + CONSISTENT_MARK)


def _adoptable_stagings(path, exclude):
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
            _remove_staging(staging)
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


def entry_names_of(path):
    """The variable names (and start_time) a run or staging file has entries for."""
    with h5py.File(path, "r") as f:
        return _entry_names(f)


def _entry_names(f):
    names = set(f.keys()) - set(SPECIAL_GROUPS)
    for group in SPECIAL_GROUPS:
        if group in f:
            names.update(f[group].keys())
    return names


def _copy_other_entries(source, dest, taken):
    """Copies into `dest` each entry of the file `source` whose name is not in `taken`;
    returns the names copied. An unreadable run file is replaced, with a warning."""
    if not os.path.exists(source):
        return set()
    try:
        src = h5py.File(source, "r")
    except OSError as e:
        log.warning("Replacing unreadable %s: %s", source, e)
        return set()
    with src:
        copied = _entry_names(src) - taken
        for name in copied:
            for entry in (name, ".reduced/" + name, ".preview/" + name, ".errors/" + name):
                if entry in src:
                    _copy_entry(src, dest, entry)
    return copied


def _copy_entry(src, dest, entry):
    """h5py's copy, with the NetCDF dimension scales of a copied xarray group pointed at their
    copies (object references are not translated between files)."""
    parent = entry.rsplit("/", 1)[0] if "/" in entry else "/"
    src.copy(src[entry], dest.require_group(parent), entry.rsplit("/", 1)[-1])
    if isinstance(src[entry], h5py.Group):
        _reattach_dimension_scales(src[entry], dest[entry])


def _reattach_dimension_scales(src_group, dest_group):
    datasets = [key for key, obj in src_group.items() if isinstance(obj, h5py.Dataset)]
    for key in datasets:
        if "REFERENCE_LIST" in dest_group[key].attrs:
            del dest_group[key].attrs["REFERENCE_LIST"]
    for key in datasets:
        source = src_group[key]
        if "DIMENSION_LIST" not in source.attrs:
            continue
        target = dest_group[key]
        del target.attrs["DIMENSION_LIST"]
        for axis, dim in enumerate(source.dims):
            for scale in dim.values():
                target.dims[axis].attach_scale(dest_group.file[scale.name])
    for key, obj in src_group.items():
        if isinstance(obj, h5py.Group):
            _reattach_dimension_scales(obj, dest_group[key])


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_entries(f, name):
    """A variable's data, summary, preview and error go together."""
    for path in (name, ".reduced/" + name, ".preview/" + name, ".errors/" + name):
        if path in f:
            del f[path]


def _fsync_path(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _is_xarray(obj):
    return is_dataarray(obj) or is_dataset(obj)


def _create(f, path, value):
    """A dataset holding `value`: str, PNG bytes, or an array."""
    if isinstance(value, str):
        return f.create_dataset(path, data=value, dtype=h5py.string_dtype())
    if isinstance(value, PNG):
        return f.create_dataset(path, data=np.frombuffer(value.data, dtype=np.uint8))
    return f.create_dataset(path, data=np.asarray(value))


def _figure_data(obj):
    """(array, objtype) for figures, else (obj, None)."""
    if is_mpl_figure(obj):
        return figure_rgba(obj), "image"
    if is_plotly_figure(obj):
        return plotly_json_bytes(obj), "PlotlyFigure"
    return obj, None


def _write_result(f, name, result, summary):
    if summary is not None:
        dataset = _create(f, ".reduced/" + name, summary.value)
        dataset.attrs.update(summary.attrs)
    if result.preview is not None and not is_dataarray(result.preview):
        value, objtype = _figure_data(result.preview)
        dataset = _create(f, ".preview/" + name, value)
        if objtype:
            dataset.attrs[OBJTYPE_ATTR] = objtype
    if result.data is not None and not _is_xarray(result.data):
        value, objtype = _figure_data(result.data)
        group = f.create_group(name)
        _create(group, "data", value)
        if objtype:
            group.attrs[OBJTYPE_ATTR] = objtype


def _write_error(f, name, error):
    dataset = f.create_dataset(".errors/" + name, data=error_message(error),
                               dtype=h5py.string_dtype())
    dataset.attrs["type"] = type(error).__name__


def _write_start_time(f, start_time):
    """The run's start (epoch seconds); the orchestrator records it in run_info."""
    f.create_dataset("start_time/data", data=np.float64(start_time))
    f.create_dataset(".reduced/start_time", data=np.float64(start_time))


def _write_netcdf(path, items):
    """Write xarray data and previews as NetCDF4 groups (h5netcdf layout), readable with
    xarray.open_dataarray / open_dataset(path, group=name, engine='h5netcdf')."""
    import h5netcdf

    failures = {}
    with h5netcdf.File(path, "a") as nf:
        for name, result in items.items():
            try:
                if _is_xarray(result.data):
                    _dump_xarray(nf, name, result.data)
                if is_dataarray(result.preview):
                    _dump_xarray(nf, ".preview/" + name, result.preview)
            except Exception as e:
                failures[name] = StoreError("Result could not be saved as NetCDF: %s: %s"
                                            % (type(e).__name__, e))
    return failures


def _dump_xarray(nf, group, obj):
    from xarray.backends import H5NetCDFStore
    from xarray.backends.api import DATAARRAY_NAME, DATAARRAY_VARIABLE

    if is_dataarray(obj):
        objtype = "dataarray"
        if obj.name is None:
            dataset = obj.to_dataset(name=DATAARRAY_VARIABLE)
        elif obj.name in obj.coords or obj.name in obj.dims:
            # NetCDF cannot name a variable like a coordinate: keep the name aside,
            # as xarray's own to_netcdf does.
            dataset = obj.to_dataset(name=DATAARRAY_VARIABLE)
            dataset.attrs[DATAARRAY_NAME] = obj.name
        else:
            dataset = obj.to_dataset()
    else:
        objtype = "dataset"
        dataset = obj
    # HDF5 names cannot contain '/'.
    renames = {key: key.replace("/", "_") for key in dataset.variables
               if isinstance(key, str) and "/" in key}
    if renames:
        dataset = dataset.rename_vars(renames)
    encoding = {key: dict(COMPRESSION) for key in dataset.data_vars
                if dataset[key].ndim > 0 and dataset[key].size > 0
                and np.issubdtype(dataset[key].dtype, np.number)}
    store = H5NetCDFStore(nf, group=group, mode="w")
    dataset.dump_to_store(store, encoding=encoding)
    nf[group].attrs[OBJTYPE_ATTR] = objtype

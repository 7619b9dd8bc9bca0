"""The per-run HDF5 file `extracted_data/p<P>_r<R>.h5` (contract section 4).

    failures = write_run_file(path, results, errors, start_time)

Layout:
    /                  attr provenance="context.py", as the reference's files
    /.reduced/<name>   summary, attrs summary_method, units, bold, background, max_diff, summary_type
    /.preview/<name>   optional preview
    /.errors/<name>    error message, attr type=<exception class>
    /<name>/data       full result, stored plain; xarray objects as NetCDF4 groups (their
                       variables gzip-compressed, as the reference's) with attr _damnit_objtype
    /start_time/data   and /.reduced/start_time

A kill at any moment must leave the previous file readable: the new file is written as a
copy next to it (`<path>.writing-<pid>`), flushed, fsync'd and renamed over the old one.
Entries of variables not computed this time (other triggers, --match) are kept.
"""
import glob
import logging
import os
import shutil

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


class StoreError(TypeError):
    """A result that passed validation but that HDF5 or NetCDF refused to store."""


def write_run_file(path, results, errors, start_time):
    """Write `results` ({name: (Result, Summary or None)}) and `errors` ({name: exception})
    into the run file at `path`, atomically. Returns {name: StoreError} for results that
    could not be stored: those are written as errors instead."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    _remove_stale_temporaries(path)
    temp_path = "%s%s%d" % (path, TEMP_MARK, os.getpid())
    touched = set(results) | set(errors)
    if start_time is not None:
        touched.add("start_time")
    failures = {}
    try:
        mode = "w"
        if os.path.exists(path) and _keeps_other_entries(path, touched):
            shutil.copyfile(path, temp_path)
            mode = "r+"
        with h5py.File(temp_path, mode) as f:
            f.attrs["provenance"] = PROVENANCE
            for group in SPECIAL_GROUPS:
                f.require_group(group)
            for name in touched:
                _remove_entries(f, name)
            if start_time is not None:
                _write_start_time(f, start_time)
            for name, (result, summary) in results.items():
                try:
                    _write_result(f, name, result, summary)
                except Exception as e:
                    failures[name] = StoreError("Result could not be saved: %s: %s"
                                                % (type(e).__name__, e))
            for name, error in errors.items():
                _write_error(f, name, error)

        netcdf = {name: result for name, (result, _) in results.items()
                  if name not in failures and (_is_xarray(result.data) or is_dataarray(result.preview))}
        if netcdf:
            failures.update(_write_netcdf(temp_path, netcdf))

        if failures:
            with h5py.File(temp_path, "r+") as f:
                for name, error in failures.items():
                    log.error("Could not save %s: %s", name, error)
                    _remove_entries(f, name)
                    _write_error(f, name, error)

        _fsync_path(temp_path)
        # Its mode and group come from the umask and the setgid directory, as the database
        # directory's sharing says (the orchestrator's umask, inherited).
        os.replace(temp_path, path)
        _fsync_path(directory)
    except BaseException:
        if os.path.exists(temp_path):
            os.unlink(temp_path)
        raise
    return failures


def _remove_stale_temporaries(path):
    """Remove temporary copies left by writers that were killed."""
    for stale in glob.glob(glob.escape(path) + TEMP_MARK + "*"):
        pid = stale.rsplit(TEMP_MARK, 1)[1]
        if pid.isdigit() and not _process_alive(int(pid)):
            try:
                os.unlink(stale)
            except FileNotFoundError:
                pass


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _keeps_other_entries(path, touched):
    """Whether the old file holds anything this write keeps. If not, a fresh file is
    written rather than a copy, so that files do not grow with each reprocessing."""
    try:
        with h5py.File(path, "r") as f:
            names = set(f.keys()) - set(SPECIAL_GROUPS)
            for group in SPECIAL_GROUPS:
                if group in f:
                    names.update(f[group].keys())
    except OSError as e:
        log.warning("Replacing unreadable %s: %s", path, e)
        return False
    return not names <= touched


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

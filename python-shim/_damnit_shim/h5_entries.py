"""A variable's entries in a run's HDF5 file (the layout in h5writer.py): writing its result,
summary, preview or error, and the names a file has entries for."""
import h5py
import numpy as np

from _damnit_shim.results import (
    OBJTYPE_ATTR, PNG, error_message, figure_rgba, is_dataarray, is_dataset, is_mpl_figure,
    is_plotly_figure, plotly_json_bytes,
)

SPECIAL_GROUPS = (".reduced", ".preview", ".errors")
# For NetCDF variables only: plain arrays read several times faster (docs/context-file.md).
COMPRESSION = {"compression": "gzip", "compression_opts": 1, "shuffle": True}


class StoreError(TypeError):
    """A result that passed validation but that HDF5 or NetCDF refused to store."""


def entry_names_of(path):
    """The variable names (and start_time) a run or staging file has entries for."""
    with h5py.File(path, "r") as f:
        return entry_names(f)


def entry_names(f):
    names = set(f.keys()) - set(SPECIAL_GROUPS)
    for group in SPECIAL_GROUPS:
        if group in f:
            names.update(f[group].keys())
    return names


def remove_entries(f, name):
    """A variable's data, summary, preview and error go together."""
    for path in (name, ".reduced/" + name, ".preview/" + name, ".errors/" + name):
        if path in f:
            del f[path]


def is_xarray(obj):
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


def write_result(f, name, result, summary):
    if summary is not None:
        dataset = _create(f, ".reduced/" + name, summary.value)
        dataset.attrs.update(summary.attrs)
    if result.preview is not None and not is_dataarray(result.preview):
        value, objtype = _figure_data(result.preview)
        dataset = _create(f, ".preview/" + name, value)
        if objtype:
            dataset.attrs[OBJTYPE_ATTR] = objtype
    if result.data is not None and not is_xarray(result.data):
        value, objtype = _figure_data(result.data)
        group = f.create_group(name)
        _create(group, "data", value)
        if objtype:
            group.attrs[OBJTYPE_ATTR] = objtype


def write_error(f, name, error):
    dataset = f.create_dataset(".errors/" + name, data=error_message(error),
                               dtype=h5py.string_dtype())
    dataset.attrs["type"] = type(error).__name__


def write_start_time(f, start_time):
    """The run's start (epoch seconds); the orchestrator records it in run_info."""
    f.create_dataset("start_time/data", data=np.float64(start_time))
    f.create_dataset(".reduced/start_time", data=np.float64(start_time))


def write_netcdf(path, items):
    """Write xarray data and previews as NetCDF4 groups (h5netcdf layout), readable with
    xarray.open_dataarray / open_dataset(path, group=name, engine='h5netcdf')."""
    import h5netcdf

    failures = {}
    with h5netcdf.File(path, "a") as nf:
        for name, result in items.items():
            try:
                if is_xarray(result.data):
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

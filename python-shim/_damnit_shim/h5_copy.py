"""Copying a variable's entries from one run file to another (a commit's merge, h5writer.py)."""
import logging
import os

import h5py

from _damnit_shim.h5_entries import entry_names

log = logging.getLogger("ctxrunner")


def copy_other_entries(source, dest, taken):
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
        copied = entry_names(src) - taken
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

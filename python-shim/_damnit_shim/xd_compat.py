"""Opening runs with extra_data, and the newer extra_data API on older installs.

Context files are written against current extra_data (1.2x at the facility), but the
only extra_data some machines can install is Debian's 1.7, which lacks calls that
most contexts make. `adapt()` adds them to extra_data's own classes, with the newer
library's semantics, and only where the installed library lacks them:

- `run[source]` gives a SourceData-like object (`SourceData` below) when the library
  has no SourceData of its own;
- control keys without their `.value` suffix: `run[src, 'pulseEnergy.numberOfBunchesActual']`;
- KeyData: `as_single_value()`, `units`, `units_name`, `attributes()`,
  `train_id_coordinates()`, `is_control`, `is_instrument`, `nbytes`.
  (`dtype`, `entry_shape` and `ndim` are already in 1.7.)

It reads nothing itself: every value comes from extra_data's own objects.
"""
import logging
import os

import numpy as np

log = logging.getLogger("ctxrunner")

_adapted = False


class NoDataError(ValueError):
    """The selection has no data for this key (newer extra_data's NoDataError)."""

    def __init__(self, source, key):
        super().__init__("No data for source %r, key %r" % (source, key))
        self.source = source
        self.key = key


def _add_missing(cls, name, value):
    if not hasattr(cls, name):
        setattr(cls, name, value)


# --- KeyData ------------------------------------------------------------------

def _is_control(self):
    return self.section == "CONTROL"


def _is_instrument(self):
    return self.section == "INSTRUMENT"


def _nbytes(self):
    return self.dtype.itemsize * int(np.prod(self.shape))


def _attributes(self):
    """Karabo attributes of this key's dataset; for control keys, those of the property
    (stored on the group holding `.value`) as well."""
    dataset = self.files[0].file[self.hdf5_data_path]
    attrs = dict(dataset.attrs)
    if self.section == "CONTROL" and self.key.endswith(".value"):
        attrs.update(dict(dataset.parent.attrs))
    return {k: (v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else v)
            for k, v in attrs.items()}


def _units(self):
    """The unit symbol, e.g. 'μJ', or None when the data has none."""
    attrs = self.attributes()
    base = attrs.get("unitSymbol")
    if base is None:
        return None
    prefix = attrs.get("metricPrefixSymbol", "")
    return ("μ" if prefix == "u" else prefix) + base


def _units_name(self):
    attrs = self.attributes()
    base = attrs.get("unitName")
    if base is None:
        return None
    return attrs.get("metricPrefixName", "") + base


def _train_id_coordinates(self):
    """The train ID of each entry of `.ndarray()`: trains without data left out,
    repeated for several entries per train."""
    chunks = self._data_chunks
    if not chunks:
        return np.zeros(0, dtype=np.uint64)
    return np.concatenate([np.repeat(c.train_ids, c.counts.astype(np.intp)) for c in chunks])


def _decoded(values):
    if values.dtype.kind in "OS":
        return np.array([v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else v
                         for v in values.flat], dtype=object).reshape(values.shape)
    return values


def _as_single_value(self, rtol=1e-5, atol=0.0, reduce_by=None):
    """The one value this key holds through the selection: its median (or `reduce_by`:
    a callable, a numpy function name, or 'first') when every entry is within
    tolerance of it (as numpy.allclose), else ValueError. Strings must all be equal."""
    data = self.ndarray()
    if len(data) == 0:
        raise NoDataError(self.source, self.key)
    if not np.issubdtype(self.dtype, np.number):
        if reduce_by is not None:
            raise TypeError("custom reduce method not supported for non-numeric type")
        unique = np.unique(_decoded(data))
        if len(unique) > 1:
            raise ValueError("str values are not unique: %s" % (unique,))
        return unique[0]
    if reduce_by is None:
        reduce_by = "median"
    if callable(reduce_by):
        value = reduce_by(data)
    elif reduce_by == "first":
        value = data[0]
    elif isinstance(reduce_by, str) and hasattr(np, reduce_by):
        value = getattr(np, reduce_by)(data, axis=0)
    else:
        raise ValueError('invalid reduction method (may be callable, global numpy symbol or "first")')
    if not np.allclose(data, value, rtol=rtol, atol=atol):
        adev = np.max(np.abs(data - value))
        with np.errstate(divide="ignore", invalid="ignore"):
            rdev = np.max(np.abs(adev / value))
        raise ValueError("data values are not within tolerance (absolute: %.3g, relative: %.3g)"
                         % (adev, rdev))
    return value


# --- SourceData ---------------------------------------------------------------

class SourceData:
    """One source of a run, as `run[source]` gives it in newer extra_data: keys by
    `source[key]` (control keys with or without `.value`), its trains and files."""

    def __init__(self, collection, source):
        from extra_data import SourceNameError

        if source not in collection.all_sources:
            raise SourceNameError(source)
        self._collection = collection
        self.source = source
        self.section = "INSTRUMENT" if source in collection.instrument_sources else "CONTROL"

    def __repr__(self):
        return "<extra_data.SourceData source=%r for %d trains>" % (self.source, len(self.train_ids))

    @property
    def train_ids(self):
        return self._collection.train_ids

    @property
    def files(self):
        return list(self._collection._source_index[self.source])

    @property
    def is_control(self):
        return self.section == "CONTROL"

    @property
    def is_instrument(self):
        return self.section == "INSTRUMENT"

    def __contains__(self, key):
        has = self._collection._has_source_key
        return bool(has(self.source, key) or (self.is_control and has(self.source, key + ".value")))

    def __getitem__(self, key):
        return self._collection[self.source, key]

    def keys(self, inc_timestamps=True):
        keys = self._collection.keys_for_source(self.source)
        if not inc_timestamps and self.is_control:
            return {k[:-len(".value")] for k in keys if k.endswith(".value")}
        return keys

    def one_key(self, index_group=None):
        for key in sorted(self._collection.keys_for_source(self.source)):
            if index_group is None or key.partition(".")[0] == index_group:
                return key
        raise ValueError("none of the keys of %s is part of %r" % (self.source, index_group))

    @property
    def index_groups(self):
        if self.is_control:
            return {""}
        return {k.partition(".")[0] for k in self._collection.keys_for_source(self.source)}

    def select_trains(self, trains):
        return SourceData(self._collection.select_trains(trains), self.source)

    def __getattr__(self, name):
        # Anything else a DataCollection answers for a source (e.g. get_run_value)
        # is not emulated: say so plainly rather than a confusing AttributeError.
        raise AttributeError("%r has no attribute %r (the installed extra_data %s does not "
                             "provide it)" % (self, name, _installed_version()))

    def data_counts(self, labelled=True, index_group=None):
        groups = [index_group] if index_group is not None else sorted(self.index_groups)
        counts = [self[self.one_key(g or None)].data_counts(labelled=False) for g in groups]
        merged = np.stack(counts).max(axis=0)
        if labelled:
            import pandas as pd
            return pd.Series(merged, index=self.train_ids)
        return merged

    def drop_empty_trains(self, index_group=None):
        counts = self.data_counts(labelled=False, index_group=index_group)
        return self.select_trains(np.array(self.train_ids)[counts > 0])

    def train_id_coordinates(self, index_group=None):
        if index_group is None:
            groups = sorted(self.index_groups)
            if len(groups) > 1:
                counts = [self.data_counts(labelled=False, index_group=g) for g in groups]
                if any((c != counts[0]).any() for c in counts[1:]):
                    raise ValueError("source has index groups with differing data counts")
            index_group = groups[0]
        return self[self.one_key(index_group or None)].train_id_coordinates()

    def run_value(self, key):
        return self._collection.get_run_value(self.source, key)

    def run_values(self, inc_timestamps=True):
        values = self._collection.get_run_values(self.source)
        if not inc_timestamps:
            values = {k[:-len(".value")]: v for k, v in values.items() if k.endswith(".value")}
        return values

    def run_metadata(self):
        return self._collection.run_metadata()


def _installed_version():
    import extra_data
    return getattr(extra_data, "__version__", "?")


def _patch_collection(DataCollection):
    get_key_data = DataCollection._get_key_data
    getitem = DataCollection.__getitem__

    def _get_key_data(self, source, key):
        # Newer extra_data accepts a control key without its '.value' suffix.
        if (source in self.control_sources and not self._has_source_key(source, key)
                and self._has_source_key(source, key + ".value")):
            key += ".value"
        return get_key_data(self, source, key)

    def __getitem__(self, item):
        if isinstance(item, str):
            return SourceData(self, item)
        return getitem(self, item)

    def __contains__(self, item):
        if isinstance(item, str):
            return item in self.all_sources
        source, key = item
        return source in self.all_sources and key in SourceData(self, source)

    DataCollection._get_key_data = _get_key_data
    DataCollection.__getitem__ = __getitem__
    DataCollection.__contains__ = __contains__


def adapt():
    """Add the missing newer API to the installed extra_data (once)."""
    global _adapted
    if _adapted:
        return
    import extra_data
    from extra_data import DataCollection
    from extra_data.keydata import KeyData

    for name, value in (
        ("as_single_value", _as_single_value),
        ("units", property(_units)),
        ("units_name", property(_units_name)),
        ("attributes", _attributes),
        ("train_id_coordinates", _train_id_coordinates),
        ("is_control", property(_is_control)),
        ("is_instrument", property(_is_instrument)),
        ("nbytes", property(_nbytes)),
    ):
        _add_missing(KeyData, name, value)
    if not hasattr(extra_data, "SourceData"):
        # Libraries with SourceData also take control keys without '.value'.
        _patch_collection(DataCollection)
    _adapted = True


# --- opening runs -------------------------------------------------------------

def run_directory(proposal_path, run, data):
    return os.path.join(str(proposal_path), data, "r%04d" % run)


def has_run_data(proposal_path, run, data):
    """Whether `<proposal>/<data>/r<NNNN>/` holds any HDF5 file."""
    try:
        return any(name.endswith(".h5") for name in os.listdir(run_directory(proposal_path, run, data)))
    except OSError:
        return False


def open_run(proposal_path, run, data):
    """extra_data.open_run on a proposal path (accepted since 1.7), adapted."""
    import extra_data

    adapt()
    # A path (with a '/') is taken as the proposal directory itself.
    path = os.path.abspath(str(proposal_path))
    if data == "all" and not hasattr(extra_data, "SourceData"):
        return _open_all_preferring_proc(path, run)
    return extra_data.open_run(path, run, data=data)


def _open_all_preferring_proc(path, run):
    """data='all' for libraries that list a source's files per file rather than per
    source (1.7): there a source in both raw and proc files is read from both and
    refused as conflicting. As in newer extra_data, proc sources replace raw ones: the
    merged run sees the raw files through views that no longer list those sources."""
    import extra_data

    raw = extra_data.open_run(path, run, data="raw")
    proc = extra_data.open_run(path, run, data="proc")
    replaced = raw.all_sources & proc.all_sources
    raw_views = [_file_without_sources(f, replaced) for f in raw.files]
    files = list(proc.files) + [f for f in raw_views if f.all_sources]
    return extra_data.DataCollection(files, inc_suspect_trains=raw.inc_suspect_trains,
                                     is_single_run=True)


def _file_without_sources(file_access, sources):
    """The same open file, listing fewer sources. FileAccess keeps one instance per
    path, so the view is made without its constructor."""
    if not file_access.all_sources & sources:
        return file_access
    view = object.__new__(type(file_access))
    view.__dict__.update(file_access.__dict__)
    view.control_sources = file_access.control_sources - sources
    view.instrument_sources = file_access.instrument_sources - sources
    return view


def start_time(collection):
    """Epoch seconds of the run's first train; from the oldest raw file's modification
    time when the files carry no train timestamps (old file formats)."""
    stamps = collection.select_trains(np.s_[:1]).train_timestamps()
    if len(stamps) and not np.isnat(stamps[0]):
        # Microsecond precision, as the reference converts through datetime.
        return stamps[0].astype("datetime64[us]").astype(np.int64) / 1e6
    files = sorted(f.filename for f in collection.files if "raw" in f.filename) \
        or sorted(f.filename for f in collection.files)
    return os.stat(files[0]).st_mtime

"""What a variable returned, turned into what DAMNIT stores and shows.

    result = make_result(returned, variable)   # validates; TypeError/ValueError for bad values
    summary = summarise(result, name)           # the table cell's value (or None)
    message_fields(result, summary)             # the variable_result fields for the orchestrator

Rules are those of the reference (damnit_ctx.Cell and damnit_writing): contract sections 3 to 5.
Thumbnails are drawn in thumbnails.py, trendlines in trendline.py. numpy and h5py are needed;
xarray, matplotlib and plotly are used only when the returned object is one of theirs
(detected without importing them).
"""
import base64
import io
import logging
import math
import re
import struct
import sys
import warnings
from collections.abc import Sequence

import h5py
import numpy as np

from _damnit_shim.thumbnails import array_thumbnail, figure_thumbnail, plotly_thumbnail
from _damnit_shim.trendline import trendline
from damnit_ctx import Cell

log = logging.getLogger("ctxrunner")

OBJTYPE_ATTR = "_damnit_objtype"


def isinstance_no_import(obj, module, cls):
    """isinstance(obj, module.cls), False when that module was never imported: an
    object of a library's class cannot exist before the library is imported."""
    mod = sys.modules.get(module)
    return mod is not None and isinstance(obj, getattr(mod, cls))


def is_dataarray(obj):
    return isinstance_no_import(obj, "xarray", "DataArray")


def is_dataset(obj):
    return isinstance_no_import(obj, "xarray", "Dataset")


def is_mpl_figure(obj):
    return isinstance_no_import(obj, "matplotlib.figure", "Figure")


def is_mpl_axes(obj):
    return isinstance_no_import(obj, "matplotlib.axes", "Axes")


def is_plotly_figure(obj):
    return isinstance_no_import(obj, "plotly.graph_objs", "Figure")


def is_figure(obj):
    return is_mpl_figure(obj) or is_plotly_figure(obj)


class PNG:
    """Encoded PNG bytes (a thumbnail), as opposed to any other bytes value."""

    def __init__(self, data):
        self.data = data


class Result:
    """A computed, storable result: what `Cell` holds after validation."""

    def __init__(self, data, summary, summary_value, bold, background, preview, units):
        self.data = data
        self.summary = summary
        self.summary_value = summary_value
        self.bold = bold
        self.background = background
        self.preview = preview
        self.units = units


class Summary:
    """The summary of a result (`value`: str, PNG, number, complex or array) and the
    attributes stored with it in `.reduced/<name>`."""

    def __init__(self, value, attrs):
        self.value = value
        self.attrs = attrs


# --- validation ---------------------------------------------------------------

def _storable_data(data):
    if is_mpl_axes(data):
        # An Axes stands for the whole figure it is drawn in.
        data = data.get_figure()
    if data is None or isinstance(data, str) or is_figure(data) or is_dataarray(data) \
            or is_dataset(data):
        return data
    # The messages name the numpy array the value became, as the reference's do.
    arr = np.asarray(data)
    return _h5_array(arr, "Returned data type %s cannot be saved" % type(arr),
                     "Returned data type %s whose native array type %%s cannot be saved" % type(arr))


def _storable_summary_value(value):
    if value is None or isinstance(value, str):
        return value
    arr = np.asarray(value)
    # The reference names the type of the `summary` argument here (NoneType, mostly), a slip;
    # the type of the value given says what is wrong.
    return _h5_array(arr, "summary_value should be number or string, not %s" % type(value),
                     "Summary value %s whose native array type %%s cannot be saved" % type(arr))


def _h5_array(arr, object_error, native_error):
    """`arr` if HDF5 can store it: numbers, or a native type h5py can map. Object arrays
    (Python objects numpy merely wraps) cannot be stored."""
    if arr.dtype.hasobject:
        raise TypeError(object_error)
    if not np.issubdtype(arr.dtype, np.number):
        try:
            h5py.h5t.py_create(arr.dtype, logical=True)
        except TypeError:
            raise TypeError(native_error % arr.dtype)
    return arr


def _checked_preview(preview):
    if preview is None:
        return None
    if isinstance(preview, np.ndarray) or is_dataarray(preview):
        if preview.ndim not in (1, 2):
            raise TypeError("preview should be a 1D or 2D array (shape is %s)" % (preview.shape,))
        if not (np.issubdtype(preview.dtype, np.number) or preview.dtype == bool):
            raise TypeError("preview array should be numeric")
        return preview
    if is_mpl_axes(preview):
        return preview.get_figure()
    if is_figure(preview):
        return preview
    raise TypeError("preview must be an array or a figure object (got %s)" % type(preview))


def normalise_colour(colour):
    """A cell background as an RGB uint8 array: '#ffcc00' or a sequence of 3 values 0-255."""
    if colour is None:
        return None
    if isinstance(colour, str):
        if not re.fullmatch(r"#[0-9A-Fa-f]{6}", colour):
            raise ValueError("Colour string should be hex code (like '#ffcc00')")
        return np.frombuffer(bytes.fromhex(colour[1:]), dtype=np.uint8).copy()
    if isinstance(colour, (Sequence, np.ndarray)):
        if len(colour) != 3:
            raise TypeError("Wrong number of values (%d) for R,G,B" % len(colour))
        if not all(0 <= v <= 255 for v in colour):
            raise ValueError("Colour values must be 0 - 255")
        return np.array(colour, dtype=np.uint8)
    raise TypeError("Don't understand colour as %s" % type(colour))


def make_result(returned, variable):
    """Validate what a (non-transient) variable returned. Raises TypeError or ValueError
    for what cannot be stored; that becomes the variable's error."""
    cell = returned if isinstance(returned, Cell) else Cell(returned)
    data = _storable_data(cell.data)
    units = cell.units
    if units is None and is_dataarray(data) and isinstance(data.attrs.get("units"), str):
        units = data.attrs["units"]
    if units is None:
        units = variable.units
    if units is not None and not isinstance(units, str):
        raise TypeError("units should be a string, not %s" % type(units))
    return Result(
        data=data,
        summary=cell.summary if cell.summary is not None else variable.summary,
        summary_value=_storable_summary_value(cell.summary_value),
        bold=cell.bold,
        background=normalise_colour(cell.background),
        preview=_checked_preview(cell.preview),
        units=units,
    )


def transient_value(returned):
    """What a transient variable passes to its dependants: the value, unchecked."""
    return returned.data if isinstance(returned, Cell) else returned


# --- summaries ----------------------------------------------------------------

def summarise(result, name):
    """The summary of a result, by the contract's rules (section 5), or None."""
    value = _summary_value(result, name)
    if value is None:
        return None
    attrs = {}
    if result.summary is not None:
        attrs["summary_method"] = result.summary
    if result.bold is not None:
        attrs["bold"] = bool(result.bold)
    if result.background is not None:
        attrs["background"] = result.background
    if result.units is not None:
        attrs["units"] = result.units
    diff = max_diff(result.data)
    if diff is not None:
        attrs["max_diff"] = diff
    if isinstance(value, np.ndarray) and value.ndim == 2 and value.shape[0] == 2:
        attrs["summary_type"] = "trendline"
    return Summary(value, attrs)


def _summary_value(result, name):
    if result.summary_value is not None:
        return result.summary_value
    if result.data is not None and result.summary is not None:
        try:
            return np.asarray(getattr(np, result.summary)(result.data))
        except Exception:
            log.error("Failed to produce summary data for %s", name, exc_info=True)

    data = result.preview if result.preview is not None else result.data
    if isinstance(data, str):
        return data
    if is_dataset(data):
        return "Dataset (%.2fMB)" % (data.nbytes / 1e6)
    if is_mpl_figure(data):
        try:
            return PNG(figure_thumbnail(data))
        except Exception:
            log.error("Error generating thumbnail for %s", name, exc_info=True)
            return "<thumbnail error>"
    if is_plotly_figure(data):
        png = plotly_thumbnail(data, name)
        return None if png is None else PNG(png)
    if isinstance(data, np.ndarray) or is_dataarray(data):
        if data.ndim == 0:
            return np.asarray(data)
        if data.ndim == 1:
            try:
                return trendline(data, is_dataarray)
            except Exception:
                log.error("Error generating trendline for %s", name, exc_info=True)
                return "<trendline error>"
        if data.ndim == 2:
            try:
                return PNG(array_thumbnail(data, is_dataarray))
            except Exception:
                log.error("Error generating thumbnail for %s", name, exc_info=True)
                return "<thumbnail error>"
        # Describes the full data even when a preview was given.
        return "%s: %s" % (result.data.dtype, result.data.shape)
    return None


def max_diff(data):
    """|nanmax - nanmin| of a numeric array of more than one element, else None."""
    if not (isinstance(data, np.ndarray) or is_dataarray(data)):
        return None
    if data.size <= 1 or not np.issubdtype(data.dtype, np.number):
        return None
    values = np.asarray(data)
    with warnings.catch_warnings():
        # All-NaN data: nanmax warns and gives NaN, which is reported as no max_diff.
        warnings.simplefilter("ignore", RuntimeWarning)
        diff = np.abs(np.subtract(np.nanmax(values), np.nanmin(values)), dtype=np.float64)
    return float(diff)


def figure_rgba(figure):
    """A matplotlib figure drawn as an (H, W, 4) uint8 RGBA array: what is stored as its data."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.array(canvas.buffer_rgba())


def plotly_json_bytes(figure):
    return np.frombuffer(figure.to_json().encode("utf-8"), dtype=np.uint8)


# --- protocol encoding --------------------------------------------------------

def _npy_bytes(arr):
    buffer = io.BytesIO()
    np.save(buffer, arr, allow_pickle=False)
    return buffer.getvalue()


def _b64(data):
    return base64.b64encode(data).decode("ascii")


def _float_value(number):
    number = float(number)
    if math.isnan(number):
        return "nan"
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    return number


def encode_summary(summary):
    """(SummaryValue, summary_type) for the protocol: the value the run table shows."""
    if summary is None:
        return None, None
    value = summary.value
    if isinstance(value, PNG):
        return {"t": "bytes", "v": _b64(value.data)}, None
    if isinstance(value, str):
        return {"t": "str", "v": value}, None
    arr = np.asarray(value)
    if arr.ndim > 0:
        return ({"t": "bytes", "v": _b64(_npy_bytes(arr))},
                summary.attrs.get("summary_type") or "numpy")
    kind = arr.dtype.kind
    if kind in "biu":
        return {"t": "int", "v": str(int(arr))}, None
    if kind == "f":
        return {"t": "float", "v": _float_value(arr)}, None
    if kind == "c":
        number = complex(arr)
        return {"t": "bytes", "v": _b64(struct.pack("<dd", number.real, number.imag))}, "complex"
    if kind == "S":
        return {"t": "bytes", "v": _b64(arr.item())}, None
    if kind == "U":
        return {"t": "str", "v": str(arr.item())}, None
    return {"t": "str", "v": str(arr.item())}, None


def display_attributes(summary):
    """The display hints recorded with a value (JSON attributes), keys sorted as the
    reference reads them back from HDF5."""
    if summary is None:
        return None
    hints = {}
    for key in sorted(summary.attrs):
        if key in ("max_diff", "summary_method", "summary_type"):
            continue
        value = summary.attrs[key]
        if isinstance(value, np.ndarray):
            value = value.tolist()
        elif isinstance(value, np.generic):
            value = value.item()
        hints[key] = value
    return hints or None


def message_fields(summary):
    """The variable_result fields of a computed result with this summary."""
    value, summary_type = encode_summary(summary)
    diff = None if summary is None else summary.attrs.get("max_diff")
    if diff is not None and not math.isfinite(diff):
        diff = None
    return {
        "value": value,
        "summary_type": summary_type,
        "summary_method": "" if summary is None else summary.attrs.get("summary_method", ""),
        "max_diff": diff,
        "attributes": display_attributes(summary),
    }


def error_message(error):
    """str(error), even for exceptions whose __str__ itself fails."""
    try:
        return str(error)
    except Exception:
        return "<unprintable %s>" % type(error).__name__


def error_fields(error):
    """The variable_result fields of a failed or skipped variable."""
    return {
        "value": None,
        "summary_type": None,
        "summary_method": None,
        "max_diff": None,
        "attributes": {"error": error_message(error), "error_cls": type(error).__name__},
    }

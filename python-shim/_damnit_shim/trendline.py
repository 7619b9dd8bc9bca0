"""The summary of a 1-D result: an x/y line of about a hundred points for the table's sparkline.

    line = trendline(data)   # (2, N) float64: x in row 0, y in row 1

The points kept are those of the reference's downsampling, FPCS ("feature-preserving
compensated sampling"): the data is cut into windows of `ratio` points, and each window keeps
one of its extremes, the one that comes first in x, with the other carried into the next window
so that no peak or valley is lost. `ratio` is chosen so that about 120 windows cover the data;
fewer than 240 points are kept whole. NaN points are always kept: they are the gaps of the line.
"""
import numpy as np

# About 1.25 points are kept per window; this many windows give the reference's ~150 points.
TARGET_WINDOWS = 0.8 * 150


def trendline(data, is_dataarray):
    """A 1-D array or DataArray as a (2, N) float64 x/y line (x from its coordinate if any)."""
    x, y = _xy(data, is_dataarray)
    if x.size == 0:
        return np.empty((2, 0), dtype=np.float64)
    if x.size > 1 and not np.all(np.diff(x) >= 0):
        order = np.argsort(x, kind="stable")
        x, y = x[order], y[order]
    ratio = max(1, int(x.size / TARGET_WINDOWS))
    if ratio == 1:
        return np.vstack((x, y))
    return np.array(_fpcs(x, y, ratio), dtype=np.float64).reshape(-1, 2).T


def _xy(data, is_dataarray):
    if is_dataarray(data):
        y = np.asarray(data.values)
        x = None
        if data.dims and data.dims[0] in data.coords:
            x = np.asarray(data.coords[data.dims[0]].values)
        if x is None or x.shape != y.shape:
            x = np.arange(y.size)
    else:
        y = np.asarray(data)
        x = np.arange(y.size)
    if not np.issubdtype(x.dtype, np.number):
        if np.issubdtype(x.dtype, np.datetime64):
            x = x.astype("datetime64[ns]").astype(np.int64) / 1e9
        else:
            x = np.arange(y.size)
    if np.iscomplexobj(y):
        y = np.abs(y)  # the magnitude, as for 2-D thumbnails
    return x.astype(np.float64), y.astype(np.float64)


class _Extremes:
    """The running maximum and minimum of a window: (x, y) points or None."""

    def __init__(self, start=None):
        self.high = start
        self.low = start

    def take(self, xs, ys):
        """Include the window's points (no NaN among them), in order. A later point equal to
        the maximum replaces it; an equal minimum does not replace the earlier one."""
        if xs.size == 0:
            return
        top = ys.max()
        if self.high is None or top >= self.high[1]:
            i = ys.size - 1 - int(np.argmax(ys[::-1] == top))
            self.high = (xs[i], ys[i])
        bottom = ys.min()
        if self.low is None or bottom < self.low[1]:
            i = int(np.argmin(ys))
            self.low = (xs[i], ys[i])


def _fpcs(x, y, ratio):
    """The kept (x, y) points, in order. Windows are counted from the first non-NaN point."""
    nan = np.isnan(y)
    valid = np.flatnonzero(~nan)
    if valid.size == 0:
        return list(zip(x, y))
    first = int(valid[0])
    out = list(zip(x[:first], y[:first]))
    extremes = _Extremes()
    pending = None   # the extreme not kept by the previous window
    kept_low = None  # whether the previous window kept its minimum
    for start in range(first, x.size, ratio):
        stop = min(start + ratio, x.size)
        window_nan = nan[start:stop]
        if window_nan.any():
            out.extend(zip(x[start:stop][window_nan], y[start:stop][window_nan]))
        keep = ~window_nan
        extremes.take(x[start:stop][keep], y[start:stop][keep])
        low, high = extremes.low, extremes.high
        if low[0] < high[0]:
            # The previous window's carried extreme is kept too when both windows keep a
            # minimum, so that its maximum is not lost between them.
            if kept_low is True and pending != low:
                out.append(pending)
            out.append(low)
            pending, kept_low = high, True
            extremes = _Extremes(high)
        else:
            if kept_low is False and pending != high:
                out.append(pending)
            out.append(high)
            pending, kept_low = low, False
            extremes = _Extremes(low)
    if out[0][0] != x[0]:
        out.insert(0, (x[0], y[0]))
    if out[-1][0] != x[-1]:
        out.append((x[-1], y[-1]))
    return out

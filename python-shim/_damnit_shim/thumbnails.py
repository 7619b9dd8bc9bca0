"""Thumbnails: the PNG summaries of 2-D arrays and figures, the images of the run table.

    png = array_thumbnail(data)      # bytes of a 300x300 RGBA PNG
    png = figure_thumbnail(figure)   # a matplotlib figure, longest side at most 300 px
    png = plotly_thumbnail(figure, name)  # or None when plotly cannot export images here

An array thumbnail is what the reference draws with matplotlib (`imshow` filling a 300x300
figure, viridis between the array's 1st and 99th percentiles, a DataArray drawn with its y
axis pointing up), made here with numpy alone because it is on every run's path: matplotlib's
import and drawing would cost more than most variables. Colours and sampling follow matplotlib's
own (its 8-bit viridis table, nearest or Hanning resampling chosen as it chooses), so a
thumbnail matches the reference's pixel for pixel, or within a few levels where matplotlib's
fixed-point Hanning filter rounds differently.
"""
import base64
import logging
import struct
import zlib

import numpy as np

log = logging.getLogger("ctxrunner")

THUMBNAIL_SIZE = 300  # px

# viridis, matplotlib's default colour map (CC0), as the 256 8-bit RGB colours matplotlib
# draws images with (its floating-point table times 255, truncated).
_VIRIDIS = np.frombuffer(base64.b64decode(
    "RAFURAJVRANXRQVYRQZaRQhbRglcRgteRgxfRg5hRw9iRxFjRxJlRxRmRxVnRxZpRxhqSBlrSBpsSBxuSB1vSB5w"
    "SCBxSCFySCJzSCN0RyV1RyZ2Ryd3Ryh4Ryp5Ryt6Ryx7Ri18Ri98RjB9RjF+RTJ/RTR/RTWARTaBRDeBRDmCQzqD"
    "QzuDQzyEQj2EQj6FQkCFQUGGQUKGQEOHQESHP0WHP0eIPkiIPkmJPUqJPUuJPUyJPE2KPE6KO1CKO1GKOlKLOlOL"
    "OVSLOVWLOFaLOFeMN1iMN1mMNlqMNluMNVyMNV2MNF6NNF+NM2CNM2GNMmKNMmONMWSNMWWNMWaNMGeNMGiNL2mN"
    "L2qNLmuOLmyOLm2OLW6OLW+OLHCOLHGOLHKOK3OOK3SOKnWOKnaOKneOKXiOKXmOKHqOKHqOKHuOJ3yOJ32OJ36O"
    "Jn+OJoCOJoGOJYKOJYONJISNJIWNJIaNI4eNI4iNI4mNIomNIoqNIouNIYyNIY2MIY6MII+MIJCMIJGMH5KMH5OL"
    "H5SLH5WLH5aLHpeKHpiKHpmKHpmKHpqJHpuJHpyJHp2IHp6IHp+IHqCHH6GHH6KGH6OGIKSFIKWFIaaFIaeEIqeE"
    "I6iDI6mCJKqCJauBJqyBJ62AKK5/Ka9/KrB+K7F9LLF9LrJ8L7N7MLR6MrV6M7Z5Nbd4Nrh3OLl2Obl2O7p1Pbt0"
    "PrxzQL1yQr5xRL5wRb9vR8BuScFtS8JsTcJrT8NpUcRoU8VnVcZmV8ZlWcdkW8hiXslhYMlgYspfZMtdZ8xcacxb"
    "a81Zbc5YcM5Wcs9VdNBUd9BSedFRfNJPftJOgdNMg9NLhtRJiNVHi9VGjdZEkNZDktdBldc/l9g+mtg8ndk6n9k4"
    "oto3pdo1p9szqtsyrdwwr9wust0std0rt90put4nvd4mv98kwt8ixd8hx+AfyuAezeAdz+Ec0uEb1OEa1+IZ2uIY"
    "3OIY3+MY4eMY5OMY5+QZ6eQZ7OQa7uUb8eUc8+Ue9uYf+OYh+uYi/eck"
), dtype=np.uint8).reshape(256, 3)


def array_thumbnail(data, is_dataarray):
    """A 2-D array or DataArray as PNG bytes: THUMBNAIL_SIZE px square, RGBA."""
    dataarray = is_dataarray(data)
    arr = np.asarray(data.values if dataarray else data)
    if np.iscomplexobj(arr):
        arr = np.abs(arr)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    if arr.size == 0:
        raise ValueError("cannot draw an empty image")
    arr = np.nan_to_num(arr.astype(np.float64))  # NaN drawn as 0, as the reference does
    vmin, vmax = np.quantile(arr, [0.01, 0.99])
    image = _resample(arr, THUMBNAIL_SIZE)
    if dataarray:
        flip_rows, flip_columns = _axes_directions(data)
        image = image[::-1 if flip_rows else 1, ::-1 if flip_columns else 1]
    scaled = (image - vmin) / (vmax - vmin) if vmax > vmin else np.zeros_like(image)
    # matplotlib's lookup: the colour of floor(value * 256), clipped to the table.
    rgb = _VIRIDIS[np.clip(np.floor(scaled * 256), 0, 255).astype(np.intp)]
    alpha = np.full(rgb.shape[:2] + (1,), 255, dtype=np.uint8)
    return encode_png(np.concatenate((rgb, alpha), axis=2))


def _axes_directions(dataarray):
    """(flip rows, flip columns) to draw a DataArray as xarray does: y increasing upwards,
    x increasing to the right, by coordinate value (positions when there is no coordinate)."""
    def increasing(axis):
        dim = dataarray.dims[axis]
        if dim not in dataarray.coords:
            return True
        values = np.asarray(dataarray.coords[dim].values)
        if values.size < 2 or not (np.issubdtype(values.dtype, np.number)
                                   or np.issubdtype(values.dtype, np.datetime64)):
            return True
        return not values[-1] < values[0]
    return increasing(0), not increasing(1)


def _resample(arr, size):
    """`arr` resampled to size x size. matplotlib keeps nearest neighbours when each axis is
    enlarged more than 3 times, or exactly 1 or 2 times, and otherwise smooths both axes with
    a Hanning filter (stretched over the source pixels when shrinking)."""
    nearest = all(size > 3 * n or size in (n, 2 * n) for n in arr.shape)
    along = _nearest_axis if nearest else _hanning_axis
    return along(along(arr, 0, size), 1, size)


def _source_centres(n, size):
    """Where the centre of each of `size` pixels falls on an axis of `n`, in source pixels,
    rounded to 1/256 pixel as Agg (matplotlib's renderer) rounds it."""
    return np.round((np.arange(size) + 0.5) * n / size * 256) / 256


def _nearest_axis(arr, axis, size):
    index = np.minimum(np.floor(_source_centres(arr.shape[axis], size)), arr.shape[axis] - 1)
    return np.take(arr, index.astype(np.intp), axis=axis)


def _hanning_axis(arr, axis, size):
    n = arr.shape[axis]
    centres = _source_centres(n, size)
    radius = max(1.0, n / size)
    width = int(np.ceil(2 * radius)) + 2
    index = np.floor(centres - radius).astype(np.intp)[:, None] + np.arange(width)
    offset = (index + 0.5 - centres[:, None]) / radius
    weights = np.where((np.abs(offset) < 1) & (index >= 0) & (index < n),
                       0.5 + 0.5 * np.cos(np.pi * offset), 0.0)
    weights /= weights.sum(axis=1, keepdims=True)
    index = np.clip(index, 0, n - 1)
    source = np.moveaxis(arr, axis, 0)
    out = np.zeros((size,) + source.shape[1:], dtype=np.float64)
    extra = (slice(None),) + (None,) * (source.ndim - 1)
    for k in range(width):
        out += weights[:, k][extra] * source[index[:, k]]
    return np.moveaxis(out, 0, axis)


def figure_thumbnail(figure):
    """PNG bytes of a matplotlib figure drawn at a resolution that makes its longest side at
    most THUMBNAIL_SIZE px (figures already smaller are not enlarged)."""
    import io

    width, height = figure.get_size_inches() * figure.dpi
    zoom = min(1.0, THUMBNAIL_SIZE / max(width, height))
    buffer = io.BytesIO()
    figure.savefig(buffer, dpi=figure.dpi * zoom, format="png")
    return buffer.getvalue()


def plotly_thumbnail(figure, name):
    """PNG bytes of a plotly figure, longest side THUMBNAIL_SIZE px, or None: plotly's image
    export needs kaleido, which many environments lack. The reference lets that failure end
    the whole run's saving; here the cell is left without a summary and a warning says why."""
    try:
        width = figure.layout.width or 700
        height = figure.layout.height or 500
        return figure.to_image(format="png", width=width, height=height,
                               scale=THUMBNAIL_SIZE / max(width, height))
    except Exception as e:
        reason = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
        log.warning("No thumbnail for plotly figure %s: %s", name, reason)
        return None


def encode_png(pixels):
    """PNG bytes of an (H, W, 3) RGB or (H, W, 4) RGBA uint8 image."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    height, width, channels = pixels.shape
    colour_type = {3: 2, 4: 6}[channels]
    rows = np.empty((height, 1 + width * channels), dtype=np.uint8)
    rows[:, 0] = 1  # filter "Sub": each byte minus the one a pixel before, compresses better
    flat = pixels.reshape(height, width * channels)
    rows[:, 1:1 + channels] = flat[:, :channels]
    rows[:, 1 + channels:] = flat[:, channels:] - flat[:, :-channels]

    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + chunk(b"IEND", b""))

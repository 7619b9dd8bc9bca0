"""The fake run `--mock` passes to variables instead of opening files.

Like the reference's mock run: 10 trains, train timestamps, one made-up file name,
`select_trains` giving the same run back, and any other attribute or item a
unittest.mock.MagicMock. A variable that reads data therefore gets MagicMocks, which
cannot be stored: it fails with a TypeError, as with the reference, while variables
that use only the run's metadata or the `meta#` arguments compute normally.
"""
from unittest.mock import MagicMock

import numpy as np

MOCK_TRAINS = 10
# Train timestamps start here (2017-05-04 10:00:00 UTC, as the reference's mock run).
FIRST_TRAIN_NS = 1493892000000000000


def mock_run():
    run = MagicMock(name="mock_run")
    run.files = [MagicMock(filename="/tmp/foo/bar.h5")]
    run.train_ids = np.arange(MOCK_TRAINS)
    run.select_trains.side_effect = lambda *args, **kwargs: run
    run.train_timestamps.side_effect = lambda *args, **kwargs: np.array(
        run.train_ids + FIRST_TRAIN_NS, dtype="datetime64[ns]")
    return run

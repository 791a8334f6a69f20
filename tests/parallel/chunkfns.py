"""Chunk functions for the Dask tests: importable by worker processes."""

import os
from pathlib import Path

import numpy as np


def running_sum(chunk, state, data):
    """Chained: each frame's value plus the running total so far (like a pedestal)."""
    values = data[chunk.start : chunk.stop]
    totals = state + np.cumsum(values)
    return (np.arange(chunk.start, chunk.stop), totals), float(totals[-1])


def square(chunk, data):
    return np.arange(chunk.start, chunk.stop), data[chunk.start : chunk.stop] ** 2


def die_once_then_square(chunk, data, marker_folder):
    """Kills its own worker process the first time chunk 1 runs (a crash, not an
    exception), so the scheduler must run it again elsewhere."""
    marker = Path(marker_folder) / f"died-{chunk.index}"
    if chunk.index == 1 and not marker.exists():
        marker.write_text(str(os.getpid()))
        os._exit(1)
    return square(chunk, data)


def die_once_in_chain(chunk, state, data, marker_folder):
    marker = Path(marker_folder) / f"died-{chunk.index}"
    if chunk.index == 2 and not marker.exists():
        marker.write_text(str(os.getpid()))
        os._exit(1)
    return running_sum(chunk, state, data)

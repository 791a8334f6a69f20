import os

import numpy as np

from dedkit.io import blockio
from dedkit.io.blockio import pwrite_all


def test_small_and_large_buffers_land_at_their_offsets(tmp_path, monkeypatch):
    monkeypatch.setattr(blockio, "PARALLEL_MIN_BYTES", 1000)
    small = np.arange(10, dtype=np.uint8)
    large = np.arange(100_003, dtype=np.uint32)  # not a multiple of the thread count
    path = tmp_path / "f.bin"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        end = pwrite_all(fd, small, 5)
        assert end == 15
        end = pwrite_all(fd, large, end)
        assert end == 15 + large.nbytes
    finally:
        os.close(fd)
    raw = path.read_bytes()
    assert raw[:5] == b"\0" * 5
    assert raw[5:15] == small.tobytes()
    assert raw[15:] == large.tobytes()

"""DM3/DM4 images (gain references) through ncempy, flipped to Y up."""

import sys

import numpy as np
import pytest
from dmwriter import dm_bytes, write_dm

from dedkit.errors import DedkitError
from dedkit.io.dm import DmImage, is_dm, read_dm


def image_of(dtype, shape=(5, 7), seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.uniform(0.5, 2.0, shape).astype(dtype)
    return rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)


@pytest.mark.parametrize("version", [3, 4])
@pytest.mark.parametrize("dtype", [np.float32, np.uint16, np.int16, np.uint8, np.float64])
def test_read_dm_returns_the_image_flipped_in_y_with_its_dtype(tmp_path, version, dtype):
    stored = image_of(dtype)
    path = tmp_path / f"gain.dm{version}"
    write_dm(path, stored, version=version)
    image = read_dm(path)
    assert isinstance(image, DmImage)
    assert image.data.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(image.data, np.flipud(stored))
    assert image.data.flags.c_contiguous


@pytest.mark.parametrize("version", [3, 4])
def test_top_row_of_the_dm_image_is_the_last_dedkit_row(tmp_path, version):
    stored = np.zeros((4, 6), np.float32)
    stored[0, 1] = 3.0
    path = tmp_path / f"bright_top.dm{version}"
    write_dm(path, stored, version=version)
    data = read_dm(path).data
    assert data[3, 1] == 3.0
    assert data.sum() == 3.0


@pytest.mark.parametrize(
    ("scale", "units", "expected"),
    [
        ((0.5, 0.25), ("nm", "nm"), (5.0, 2.5)),
        ((1.2, 1.2), ("\u00c5", "\u00c5"), (1.2, 1.2)),
        ((1.0, 1.0), ("", ""), None),
        ((0.5, 0.5), ("1/nm", "1/nm"), None),
    ],
    ids=["nm", "angstrom", "uncalibrated", "reciprocal"],
)
def test_pixel_size_in_angstrom_only_for_length_units(tmp_path, scale, units, expected):
    path = tmp_path / "calibrated.dm4"
    write_dm(path, image_of(np.float32), version=4, scale=scale, units=units)
    pixel_size = read_dm(path).pixel_size
    if expected is None:
        assert pixel_size is None
    else:
        assert pixel_size == pytest.approx(expected)


def test_metadata_holds_the_image_tags(tmp_path):
    path = tmp_path / "tagged.dm4"
    write_dm(path, image_of(np.float32), version=4, device_name="K2 Summit")
    assert read_dm(path).metadata["Acquisition Device Name"] == "K2 Summit"


@pytest.mark.parametrize(
    ("name", "expected"),
    [("gain.dm4", True), ("GAIN.DM3", True), ("gain.mrc", False), ("dm4", False)],
)
def test_is_dm_goes_by_suffix(name, expected):
    assert is_dm(name) is expected


@pytest.mark.parametrize("version", [3, 4])
@pytest.mark.parametrize("keep", [0, 10, 40, 300, 0.5, -120])
def test_truncated_file_raises_one_line_dedkit_error(tmp_path, version, keep):
    content = dm_bytes(image_of(np.float32, shape=(32, 32)), version=version)
    cut = int(len(content) * keep) if isinstance(keep, float) else keep
    path = tmp_path / "cut.dm4"
    path.write_bytes(content[:cut])
    with pytest.raises(DedkitError) as err:
        read_dm(path)
    message = str(err.value)
    assert str(path) in message
    assert "\n" not in message


def test_corrupt_tags_raise_dedkit_error(tmp_path):
    content = bytearray(dm_bytes(image_of(np.float32), version=4))
    content[40:80] = b"\xff" * 40
    path = tmp_path / "corrupt.dm4"
    path.write_bytes(bytes(content))
    with pytest.raises(DedkitError, match="cannot read DM file"):
        read_dm(path)


def test_file_that_is_not_dm_is_refused(tmp_path):
    path = tmp_path / "image.dm4"
    path.write_bytes(b"II*\x00" + bytes(100))
    with pytest.raises(DedkitError, match="not a DM3/DM4 file"):
        read_dm(path)


def test_missing_file(tmp_path):
    with pytest.raises(DedkitError, match="no such file"):
        read_dm(tmp_path / "absent.dm4")


def test_without_ncempy_the_error_names_the_extra(tmp_path, monkeypatch):
    path = tmp_path / "gain.dm4"
    write_dm(path, image_of(np.float32), version=4)
    monkeypatch.setitem(sys.modules, "ncempy.io", None)
    with pytest.raises(DedkitError, match=r"needs the 'dm' extra: pip install 'dedkit\[dm\]'"):
        read_dm(path)

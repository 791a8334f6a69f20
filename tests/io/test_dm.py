"""DM3/DM4 images (gain references) through ncempy, flipped to Y up."""

import sys
from pathlib import Path

import numpy as np
import pytest

from dedkit.errors import DedkitError
from dedkit.io.dm import DmImage, is_dm, read_dm
from dmwriter import dm_bytes, write_dm


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


EXTERNAL_DM = Path(__file__).resolve().parents[3] / "shared" / "cases" / "external" / "dm"


@pytest.mark.parametrize(
    ("units", "expected"),
    [
        (("A", "A"), (1.5, 3.0)),
        (("a", "nm"), (1.5, 30.0)),
        (("pm", "pm"), (0.015, 0.03)),
        (("\u00b5m", "um"), (1.5e4, 3e4)),
        (("\u03bcm", "\u00c5"), (1.5e4, 3.0)),
        (("nm", "1/nm"), None),
    ],
    ids=["A", "a-nm", "pm", "micro-sign-um", "greek-mu-angstrom", "one-reciprocal"],
)
def test_issue13_item15_length_units(tmp_path, units, expected):
    """DM's plain "A" (and pm, um in its spellings) is a length: the pixel size is kept."""
    path = tmp_path / "calibrated.dm3"
    write_dm(path, image_of(np.float32), version=3, scale=(1.5, 3.0), units=units)
    image = read_dm(path)
    assert image.units == units
    if expected is None:
        assert image.pixel_size is None
    else:
        assert image.pixel_size == pytest.approx(expected)


@pytest.mark.parametrize("version", [3, 4])
def test_issue13_item15_real_files_with_unit_a(version):
    """ncempy's test file calibrates y in "A" and x in "nm": both are kept, (x, y)."""
    path = EXTERNAL_DM / f"ncempy_dmTest_float32_nonSquare_diffPixelSize.dm{version}"
    if not path.is_file():
        pytest.skip("shared external cases not present")
    image = read_dm(path)
    assert image.units == ("nm", "A")
    assert image.pixel_size == pytest.approx((10.0, 2.0))


@pytest.mark.parametrize(
    ("code", "name"),
    [(14, "bool"), (23, "RGBA colour"), (5, "packed complex"), (8, "RGB colour"), (99, "unknown")],
)
def test_issue13_item15_unsupported_type_named(tmp_path, code, name):
    """An unsupported DM data type is named, not called truncated or corrupt."""
    path = tmp_path / "typed.dm4"
    path.write_bytes(dm_bytes(image_of(np.uint32), version=4, data_type=code))
    with pytest.raises(DedkitError) as err:
        read_dm(path)
    message = str(err.value)
    assert f"unsupported DM data type {code} ({name})" in message
    assert "corrupt" not in message


@pytest.mark.parametrize("shape", [(1, 2048), (9, 1)])
def test_issue13_item15_one_dimensional_data_refused(tmp_path, shape):
    """A 1 x N spectrum (or N x 1 profile) is not an image: one line, no data read."""
    from dedkit.io.images import read_image
    from dedkit.io.stack import open_stack

    path = tmp_path / "spectrum.dm3"
    write_dm(path, np.ones(shape, np.float32), version=3)
    for reader in (read_dm, read_image, open_stack):
        with pytest.raises(DedkitError, match="1-D data .* a spectrum or profile"):
            reader(path)


def test_issue13_item15_real_spectra_refused():
    for name in ("ncempy_08_carbon.dm3", "rsciio_1D_test-1.dm3"):
        path = EXTERNAL_DM / name
        if not path.is_file():
            pytest.skip("shared external cases not present")
        with pytest.raises(DedkitError, match="1-D data"):
            read_dm(path)


def test_issue13_item15_header_shows_dm(tmp_path, capsys):
    """`dedkit header` shows a DM file: size, type, pixel size and the file's units."""
    from dedkit.cli.main import main

    path = tmp_path / "gain.dm4"
    write_dm(
        path, image_of(np.float32, shape=(5, 7)), version=4, scale=(2.0, 0.5), units=("A", "nm")
    )
    assert main(["header", str(path)]) == 0
    out = capsys.readouterr().out
    assert "dm, 7 x 5 x 1, float32" in out
    assert "pixel size (A)  2 x 5" in out
    assert "units           A x nm" in out
    assert main(["header", "--json", str(path)]) == 0
    capsys.readouterr()


def test_issue13_item15_dm_opens_as_a_stack(tmp_path):
    """A DM image opens through open_stack (Y up) and converts to MRC."""
    import mrcfile

    from dedkit.io.stack import open_stack
    from dedkit.jobs.stacks import convert_stack

    stored = image_of(np.uint16, shape=(6, 4))
    path = tmp_path / "ref.dm4"
    write_dm(path, stored, version=4, scale=(0.1, 0.1), units=("nm", "nm"))
    with open_stack(path) as stack:
        assert stack.info.shape == (1, 6, 4)
        assert stack.info.pixel_size == pytest.approx((1.0, 1.0, 0.0))
        np.testing.assert_array_equal(stack.read(0), np.flipud(stored))
    convert_stack(path, tmp_path / "ref.mrc")
    with mrcfile.open(tmp_path / "ref.mrc") as m:
        np.testing.assert_array_equal(m.data.reshape(6, 4), np.flipud(stored))
        assert float(m.voxel_size.x) == pytest.approx(1.0)


def test_issue13_item15_size_checked_before_reading(tmp_path):
    """A header declaring more pixels than the file holds is refused before any read."""
    content = bytearray(dm_bytes(image_of(np.float32, shape=(4, 4)), version=4))
    # the Dimensions values (x = 4, y = 4) are the only little-endian uint32 4s after "Dimensions"
    at = content.index(b"Dimensions")
    x_at = content.index((4).to_bytes(4, "little"), at)
    content[x_at : x_at + 4] = (2**31).to_bytes(4, "little")
    path = tmp_path / "huge.dm4"
    path.write_bytes(bytes(content))
    with pytest.raises(DedkitError, match="truncated or corrupt DM file"):
        read_dm(path)

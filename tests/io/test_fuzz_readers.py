"""Fuzz-style tests of the counting-camera readers (issue 13: "a fuzz-style test module
exercises each reader with mutated headers and truncations").

Each reader gets valid files made here (with mrcfile, tifffile, the test DM writer or as
text), then hypothesis mutates them: random bytes over the header, header fields set to
lying values (sizes, modes, frame counts, extended header sizes, huge dimensions) and
truncation. Every case must either read or raise :class:`DedkitError`:

- never another exception (the CLI would call it an internal error),
- never a hang (each example runs under an alarm),
- never an allocation far beyond the file: the peak of Python and numpy allocations
  (``tracemalloc``) must stay within a small bound plus a multiple of the file size.

Examples are derandomized so that CI is reproducible, and kept to ~60-80 per reader.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import struct
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis not installed (test extra)")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from dedkit.errors import DedkitError  # noqa: E402
from dmwriter import dm_bytes  # noqa: E402

#: DEDKIT_FUZZ_EXAMPLES=2000 (say) searches longer, with fresh random examples
_LONG_RUN = int(os.environ.get("DEDKIT_FUZZ_EXAMPLES", "0"))

FUZZ = settings(
    max_examples=_LONG_RUN or 70,
    deadline=None,
    derandomize=not _LONG_RUN,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: seconds one example may take before it counts as a hang
HANG_S = 20
#: allocation allowed whatever the file: frames of a few KB, parsers' own tables
BASE_BYTES = 16 * 2**20
#: how many times the file size a reader may allocate on top (a compressed TIFF page
#: may decode to at most dedkit's ratio limit; the seeds here are tiny)
PER_FILE_BYTE = 64

#: values a lying header likes to hold
LIES = st.sampled_from(
    [0, 1, 2, 3, -1, -2, 7, 255, 256, 1023, 1024, 65535, 65536, 2**20, 2**24, 2**30]
    + [2**31 - 1, -(2**31), 2**32 - 1, 101, 12, 6, 4, 0x7FFF, 0x8000]
)
INT32 = st.one_of(LIES, st.integers(-(2**31), 2**31 - 1))


class _Hang(Exception):
    pass


@contextlib.contextmanager
def _alarm(seconds: int):
    def _raise(signum, frame):
        raise _Hang(f"no answer within {seconds} s")

    old = signal.signal(signal.SIGALRM, _raise)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _check(read, content: bytes, suffix: str) -> None:
    """Write ``content`` and run ``read(path)``: it reads or raises DedkitError, in
    bounded time and memory."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"fuzz{suffix}"
        path.write_bytes(content)
        limit = BASE_BYTES + PER_FILE_BYTE * len(content)
        tracemalloc.start()
        try:
            with _alarm(HANG_S):
                read(path)
        except DedkitError as error:
            assert "\n" not in str(error)
        except _Hang:
            pytest.fail(f"reader hung on {len(content)} bytes")
        finally:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        assert peak <= limit, f"peak allocation {peak} bytes for a {len(content)}-byte file"


def _mutate(content: bytes, data, *, header: int) -> bytes:
    """Random bytes over the first ``header`` bytes, random fields, then a truncation."""
    raw = bytearray(content)
    for _ in range(data.draw(st.integers(0, 4), label="n_patches")):
        at = data.draw(st.integers(0, max(0, min(header, len(raw)) - 1)), label="at")
        patch = data.draw(st.binary(min_size=1, max_size=8), label="patch")
        raw[at : at + len(patch)] = patch
    if data.draw(st.booleans(), label="truncate"):
        raw = raw[: data.draw(st.integers(0, len(raw)), label="keep")]
    return bytes(raw)


# ----- MRC ---------------------------------------------------------------------------


def _read_stack(path):
    from dedkit.io.stack import open_stack
    from dedkit.io.titles import parse_frame_titles

    with open_stack(path) as stack:
        parse_frame_titles(stack.info.titles)
        for index in range(min(len(stack), 4)):
            stack.read(index)
            stack.read_packed(index)


def _mrc_seeds() -> list[bytes]:
    import mrcfile

    from dedkit.io.stack import create_stack

    seeds = []
    with tempfile.TemporaryDirectory() as folder:
        for dtype in (np.int16, np.float32, np.uint8):
            path = Path(folder) / f"s{np.dtype(dtype).name}.mrc"
            with mrcfile.new(path) as m:
                m.set_data(np.arange(3 * 8 * 10).reshape(3, 8, 10).astype(dtype))
                m.voxel_size = 1.5
            seeds.append(path.read_bytes())
        for packing in ("mode101", "half-bytes"):
            path = Path(folder) / f"{packing}.mrc"
            with create_stack(path, (2, 6, 10), np.uint8, packing=packing) as writer:
                for frame in range(2):
                    writer.write(np.full((6, 10), frame + 3, np.uint8))
            seeds.append(path.read_bytes())
    return seeds


MRC_SEEDS = _mrc_seeds()
#: (offset, struct format) of the MRC header fields a liar would change
MRC_FIELDS = [
    (0, "<i"),  # nx
    (4, "<i"),  # ny
    (8, "<i"),  # nz
    (12, "<i"),  # mode
    (28, "<i"),  # mx
    (32, "<i"),  # my
    (36, "<i"),  # mz
    (40, "<f"),  # cella x
    (44, "<f"),  # cella y
    (48, "<f"),  # cella z
    (92, "<i"),  # nsymbt
    (152, "<i"),  # IMOD stamp
    (156, "<i"),  # IMOD flags
    (212, "<4s"),  # machine stamp
    (220, "<i"),  # nlabl
]


@FUZZ
@given(data=st.data())
def test_fuzz_mrc(data):
    """MRC modes 0, 1, 2, 101 and half-bytes with lying fields, random bytes and cuts."""
    raw = bytearray(data.draw(st.sampled_from(MRC_SEEDS), label="seed"))
    for _ in range(data.draw(st.integers(0, 3), label="n_lies")):
        offset, fmt = data.draw(st.sampled_from(MRC_FIELDS), label="field")
        if fmt == "<f":
            value = data.draw(st.floats(width=32, allow_nan=True, allow_infinity=True))
        elif fmt == "<4s":
            value = data.draw(st.binary(min_size=4, max_size=4))
        else:
            fmt, value = "<I", data.draw(INT32, label="value") % 2**32
        struct.pack_into(fmt, raw, offset, value)
    _check(_read_stack, _mutate(bytes(raw), data, header=1024 + 64), ".mrc")


# ----- TIFF --------------------------------------------------------------------------


def _tiff_seeds() -> list[bytes]:
    import tifffile

    from dedkit.io.stack import create_stack

    seeds = []
    frames = (np.arange(3 * 8 * 10) % 251).reshape(3, 8, 10)
    for dtype, compression in ((np.uint16, None), (np.uint8, "lzw"), (np.float32, "zlib")):
        buffer = io.BytesIO()
        with tifffile.TiffWriter(buffer) as tiff:
            for frame in frames.astype(dtype):
                tiff.write(frame, compression=compression, photometric="minisblack")
        seeds.append(buffer.getvalue())
    with tempfile.TemporaryDirectory() as folder:
        for packing in ("tiff4", "serialemccd"):
            path = Path(folder) / f"{packing}.tif"
            with create_stack(path, (2, 6, 10), np.uint8, packing=packing) as writer:
                for frame in range(2):
                    writer.write(np.full((6, 10), frame + 3, np.uint8))
            seeds.append(path.read_bytes())
    return seeds


TIFF_SEEDS = _tiff_seeds()


def _tiff_tag_offsets(content: bytes) -> list[int]:
    """Offsets of the value fields of the first IFD's entries (classic little-endian)."""
    if content[:2] != b"II" or len(content) < 8:
        return []
    (ifd,) = struct.unpack_from("<I", content, 4)
    if ifd + 2 > len(content):
        return []
    (count,) = struct.unpack_from("<H", content, ifd)
    return [ifd + 2 + 12 * i + 8 for i in range(count) if ifd + 14 + 12 * i <= len(content)]


@FUZZ
@given(data=st.data())
def test_fuzz_tiff(data):
    """TIFF stacks (plain, LZW, deflate, 4-bit, SerialEMCCD) with lying tags and cuts:
    huge ImageWidth/ImageLength, wrong strip offsets and counts, random bytes."""
    raw = bytearray(data.draw(st.sampled_from(TIFF_SEEDS), label="seed"))
    offsets = _tiff_tag_offsets(bytes(raw))
    for _ in range(data.draw(st.integers(0, 3), label="n_lies")):
        if not offsets:
            break
        at = data.draw(st.sampled_from(offsets), label="tag")
        struct.pack_into("<I", raw, at, data.draw(INT32, label="value") % 2**32)
    header = max(offsets, default=8) + 16
    _check(_read_stack, _mutate(bytes(raw), data, header=header), ".tif")


# ----- DM ----------------------------------------------------------------------------


def _dm_seeds() -> list[bytes]:
    image = (np.arange(8 * 10) % 97).reshape(8, 10)
    return [
        dm_bytes(image.astype(np.float32), version=3, scale=(0.5, 0.5), units=("nm", "nm")),
        dm_bytes(image.astype(np.uint16), version=4, scale=(2.0, 1.0), units=("A", "A")),
    ]


DM_SEEDS = _dm_seeds()


def _read_dm_everywhere(path):
    from dedkit.io.dm import read_dm

    with contextlib.suppress(DedkitError):
        read_dm(path)
    _read_stack(path)


@FUZZ
@given(data=st.data())
def test_fuzz_dm(data):
    """DM3/DM4 with lying dimensions, data types, tag counts and lengths, and cuts."""
    raw = bytearray(data.draw(st.sampled_from(DM_SEEDS), label="seed"))
    # the little-endian values of the image tags (Dimensions, DataType, PixelDepth) and
    # the big-endian counts and lengths of the tag structure are both worth lying about
    for _ in range(data.draw(st.integers(0, 3), label="n_lies")):
        at = data.draw(st.integers(0, len(raw) - 4), label="at")
        order = data.draw(st.sampled_from(["<I", ">I"]), label="order")
        struct.pack_into(order, raw, at, data.draw(INT32, label="value") % 2**32)
    _check(_read_dm_everywhere, _mutate(bytes(raw), data, header=len(raw)), ".dm4")


@pytest.fixture(scope="module", autouse=True)
def _warm_up():
    """Read every seed once before measuring: first imports (ncempy, codecs) and first
    compilations are not the reader's allocations."""
    for read, seeds, suffix in (
        (_read_stack, MRC_SEEDS, ".mrc"),
        (_read_stack, TIFF_SEEDS, ".tif"),
        (_read_dm_everywhere, DM_SEEDS, ".dm4"),
        (_read_mdoc, [MDOC_SEED.encode()], ".mdoc"),
        (_read_defects, [DEFECTS_SEED.encode()], ".txt"),
    ):
        for seed in seeds:
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / f"seed{suffix}"
                path.write_bytes(seed)
                read(path)


# ----- mdoc, defect lists, frame titles ----------------------------------------------

MDOC_SEED = (
    "PixelSpacing = 1.06\nImageFile = frames.mrc\nImageSize = 5760 4092\nDataMode = 1\n\n"
    "[T = SerialEM: Digitized on a Krios   01-Jan-24  10:00:00]\n\n"
    "[ZValue = 0]\nTiltAngle = 0.001\nStagePosition = 20.7 155.2\nExposureDose = 1.5\n"
    "NumSubFrames = 8\nFrameDosesAndNumber = 0.2 8\nDateTime = 30-Nov-15  15:21:38\n"
    "SubFramePath = D:\\frames\\TS_01_000.tif\n\n[ZValue = 1]\nTiltAngle = 3.0\n"
)
TEXT_PIECES = st.sampled_from(
    [
        "[",
        "]",
        "=",
        " = ",
        "\n",
        "\r\n",
        "[ZValue = ",
        "[FrameSet = 0]",
        "[T = x]",
        "TiltAngle",
        "ImageSize",
        "nan",
        "inf",
        "-1",
        "99999999999999999999999999999",
        "1e400",
        "\x00",
        "\ufffd",
        "é",
        "\t",
        "#",
    ]
)


def _read_mdoc(path):
    from dedkit.io.mdoc import format_mdoc, read_mdoc

    mdoc = read_mdoc(path)
    format_mdoc(mdoc)
    for section in [None, *mdoc.sections]:
        for key in ("TiltAngle", "ImageSize", "ExposureDose", "NumSubFrames"):
            with contextlib.suppress(DedkitError):
                mdoc.get_floats(key, section)
            with contextlib.suppress(DedkitError):
                mdoc.get_ints(key, section)


def _text_mutation(seed: str, data) -> bytes:
    text = seed
    for _ in range(data.draw(st.integers(0, 6), label="n_edits")):
        at = data.draw(st.integers(0, len(text)), label="at")
        piece = data.draw(st.one_of(TEXT_PIECES, st.text(max_size=6)), label="piece")
        cut = data.draw(st.integers(0, 4), label="cut")
        text = text[:at] + piece + text[at + cut :]
    content = text.encode("utf-8", "surrogatepass")
    return _mutate(content, data, header=len(content))


@FUZZ
@given(data=st.data())
def test_fuzz_mdoc(data):
    """mdoc text with broken headers, stray brackets, carriage returns, huge numbers."""
    _check(_read_mdoc, _text_mutation(MDOC_SEED, data), ".mdoc")


DEFECTS_SEED = (
    "CameraSizeX 96\nCameraSizeY 96\nRotationAndFlip 0\nBadColumns 10 11\nBadRows 40\n"
    "BadPixels 5 7 60 61 80 20\nPartialBadColumn 70 1 10 50\nPartialBadRow 3 1 0 20\n"
    "UsableArea 1 1 95 95\nWasScaled 0\nK2Type 1\n"
)


def _read_defects(path):
    from dedkit.io.defects import read_defects

    read_defects(path)


@FUZZ
@given(data=st.data())
def test_fuzz_defects(data):
    """SerialEM defect lists with damaged keywords, huge and negative numbers, cuts."""
    _check(_read_defects, _text_mutation(DEFECTS_SEED, data), ".txt")


TITLE_SEEDS = [
    "SerialEMCCD: Dose frac. image, scaled by 1.00  r/f 0  need 6",
    "SerialEMCCD: Frames . ., 4 bits packed  r/f 4",
    "SuperRef_frames.dm4",
    "defects_K3.txt",
]


@FUZZ
@given(data=st.data())
def test_fuzz_frame_titles(data):
    """Frame titles (SerialEMCCD's r/f, scaling, need, reference names) never crash."""
    from dedkit.io.titles import parse_frame_titles

    titles = []
    for _ in range(data.draw(st.integers(0, 4), label="n_titles")):
        seed = data.draw(st.sampled_from(TITLE_SEEDS), label="seed")
        titles.append(_text_mutation(seed, data).decode("utf-8", "replace"))
    with contextlib.suppress(DedkitError):
        parse_frame_titles(titles)


def test_fuzz_huge_declared_sizes_allocate_little(tmp_path):
    """Headers declaring gigapixel frames are refused before anything that size exists."""
    import mrcfile

    path = tmp_path / "huge.mrc"
    with mrcfile.new(path) as m:
        m.set_data(np.zeros((1, 4, 4), np.int16))
    raw = bytearray(path.read_bytes())
    struct.pack_into("<iii", raw, 0, 2**20 - 1, 2**20 - 1, 2**31 - 1)
    path.write_bytes(bytes(raw))
    _check(_read_stack, bytes(raw), ".mrc")
    dm = bytearray(DM_SEEDS[1])
    at = dm.index(b"Dimensions")
    x_at = dm.index((10).to_bytes(4, "little"), at)
    struct.pack_into("<II", dm, x_at, 2**31, 2**31)
    _check(_read_dm_everywhere, bytes(dm), ".dm4")
    assert os.path.getsize(path) < 2**20


# ----- what fuzzing found, kept as plain regression tests ------------------------------


def test_fuzz_found_mdoc_carriage_return_in_a_section_header(tmp_path):
    """A lone CR inside [T = ...] raised ValueError from the section's own checks."""
    from dedkit.io.mdoc import read_mdoc

    path = tmp_path / "cr.mdoc"
    path.write_bytes(b"PixelSpacing = 1\n\n[T = Serial\rEM]\n")
    with pytest.raises(DedkitError, match="line break"):
        read_mdoc(path)


def test_fuzz_found_tiff_lying_image_size(tmp_path):
    """ImageWidth/ImageLength of 2**32 - 1 in a 178-byte TIFF made tifffile allocate
    64 GB; the page's declared size is now checked against its stored bytes."""
    import tifffile

    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.zeros((8, 10), np.uint16), photometric="minisblack")
    raw = bytearray(buffer.getvalue())
    offsets = _tiff_tag_offsets(bytes(raw))
    struct.pack_into("<I", raw, offsets[0], 2**32 - 1)  # ImageWidth
    struct.pack_into("<I", raw, offsets[1], 2**16)  # ImageLength
    _check(_read_stack, bytes(raw), ".tif")
    path = tmp_path / "lying.tif"
    path.write_bytes(bytes(raw))
    from dedkit.io.stack import open_stack

    with pytest.raises(DedkitError, match="truncated or corrupt TIFF"):
        open_stack(path)

"""Fixtures for the command-line tests: small stacks, gain references and defect lists
built on the fly with mrcfile, tifffile and plain bytes (not with dedkit's own writers),
and a runner that calls ``dedkit.cli.main.main`` in-process.

Arrays handed to the makers are in dedkit's convention (row 0 at the bottom, Y up); the
TIFF makers flip them, as a camera program writing row 0 at the top would store them.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import tifffile

from dedkit.cli.main import main

#: frame size used throughout: small, even in both directions, not square
NY, NX = 16, 24
IMOD_STAMP = 1146047817


def packed_title(rotflip: int = 0) -> str:
    """SerialEMCCD's first title line for 4-bit frames saved with r/f ``rotflip``."""
    return f"SerialEMCCD: Frames . ., 4 bits packed  r/f {rotflip}"


def pack_low_first(frames: np.ndarray) -> np.ndarray:
    """Pack 4-bit values two to a byte, left pixel in the LOW nibble, rows padded."""
    frames = np.asarray(frames, np.uint8)
    if frames.shape[-1] % 2:
        pad = [(0, 0)] * (frames.ndim - 1) + [(0, 1)]
        frames = np.pad(frames, pad)
    return (frames[..., 0::2] & 15) | ((frames[..., 1::2] & 15) << 4)


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def snapshot(folder) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones too) -> its hash; folders -> 'dir'."""
    folder = Path(folder)
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        out[rel] = (
            "dir"
            if p.is_dir() and not p.is_symlink()
            else ("link" if p.is_symlink() and not p.exists() else sha256(p))
        )
    return out


@dataclass
class Result:
    """What one in-process ``dedkit`` call did."""

    status: int
    out: str
    err: str

    @property
    def json(self):
        return json.loads(self.out)

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()

    def __repr__(self) -> str:  # shown by pytest when an assertion fails
        return f"Result(status={self.status}, out={self.out[:2000]!r}, err={self.err[:2000]!r})"


@pytest.fixture
def run(capsys):
    """``run(*args)`` calls the CLI in-process and returns a :class:`Result`."""

    def _run(*args) -> Result:
        capsys.readouterr()
        status = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return Result(status, out, err)

    return _run


class Maker:
    """Writes small test files into one folder, independently of dedkit's writers."""

    NY, NX = NY, NX
    pack_low_first = staticmethod(pack_low_first)
    packed_title = staticmethod(packed_title)

    def __init__(self, folder: Path):
        self.folder = folder

    def path(self, name) -> Path:
        return self.folder / name

    # ----- random data ---------------------------------------------------------------
    @staticmethod
    def counts(nz=3, ny=NY, nx=NX, high=16, seed=0, dtype=np.uint8) -> np.ndarray:
        """Random counts 0..high-1, Y up."""
        return np.random.default_rng(seed).integers(0, high, (nz, ny, nx)).astype(dtype)

    @staticmethod
    def gain_values(ny=NY, nx=NX, seed=1) -> np.ndarray:
        """A float32 gain reference of multiples of 1/8 in 0.5..2 (exact in float32, so
        raw x gain x scale has no rounding ambiguity)."""
        rng = np.random.default_rng(seed)
        return (rng.integers(4, 17, (ny, nx)) / 8).astype(np.float32)

    # ----- MRC -----------------------------------------------------------------------
    def mrc(self, name, frames, titles=(), voxel_size=None) -> Path:
        """An MRC stack of ``frames`` (uint8 is written as mode 0)."""
        path = self.path(name)
        frames = np.asarray(frames)
        data = frames.view(np.int8) if frames.dtype == np.uint8 else frames
        with mrcfile.new(path, overwrite=True) as m:
            m.set_data(np.ascontiguousarray(data))
            m.header.nlabl = 0
            m.header.label = b""
            for t in titles:
                m.add_label(t)
            if voxel_size is not None:
                m.voxel_size = voxel_size
        return path

    def mrc_4bit(self, name, frames, titles=None, form="mode101") -> Path:
        """A 4-bit stack as MRC mode 101 or IMOD's half-X mode-0 bytes (IMOD flag); the
        default title is SerialEMCCD's for r/f 0."""
        titles = [packed_title(0)] if titles is None else titles
        frames = np.asarray(frames, np.uint8)
        nz, ny, nx = frames.shape
        packed = pack_low_first(frames)
        path = self.mrc(name, packed, titles)
        with open(path, "r+b") as f:
            if form == "mode101":
                f.seek(0)
                f.write(struct.pack("<i", nx))
                f.seek(12)
                f.write(struct.pack("<i", 101))
                f.seek(28)
                f.write(struct.pack("<i", nx))
            elif form == "half-bytes":
                f.seek(152)
                f.write(struct.pack("<ii", IMOD_STAMP, 16))
            else:
                raise ValueError(form)
        return path

    def gain_mrc(self, name, gain) -> Path:
        return self.mrc(name, np.asarray(gain, np.float32)[np.newaxis])

    # ----- TIFF ----------------------------------------------------------------------
    def tiff(self, name, frames, description=None, compression=None) -> Path:
        """A multi-page TIFF, each page the frame flipped to row 0 at the top."""
        path = self.path(name)
        with tifffile.TiffWriter(path) as tw:
            for i, frame in enumerate(np.asarray(frames)):
                tw.write(
                    np.ascontiguousarray(np.flipud(frame)),
                    photometric="minisblack",
                    compression=compression,
                    description=description if i == 0 else None,
                    metadata=None,
                    contiguous=False,
                )
        return path

    def serialemccd_tiff(self, name, frames, rotflip=0) -> Path:
        """SerialEMCCD's packed TIFF: 8-bit pages of half width, low nibble first."""
        path = self.path(name)
        packed = pack_low_first(np.asarray(frames, np.uint8))
        with tifffile.TiffWriter(path) as tw:
            for i, page in enumerate(packed):
                tw.write(
                    np.ascontiguousarray(np.flipud(page)),
                    photometric="minisblack",
                    description=packed_title(rotflip) if i == 0 else None,
                    datetime=True if i == 0 else None,
                    metadata=None,
                    contiguous=False,
                )
        return path

    def gain_tiff(self, name, gain) -> Path:
        return self.tiff(name, np.asarray(gain, np.float32)[np.newaxis])

    def folder_of_tiffs(self, name, frames, numbers=None) -> Path:
        """A folder with one single-page TIFF per frame, numbered (not zero-padded)."""
        folder = self.path(name)
        folder.mkdir()
        numbers = numbers or list(range(1, len(frames) + 1))
        for number, frame in zip(numbers, frames, strict=True):
            tifffile.imwrite(
                folder / f"img_{number}.tif",
                np.ascontiguousarray(np.flipud(frame)),
                photometric="minisblack",
                metadata=None,
            )
        return folder

    # ----- defects -------------------------------------------------------------------
    def defects(
        self, name, text=None, *, size=(NX, NY), pixels=(), columns=(), rows=(), rotflip=0
    ) -> Path:
        """A SerialEM defect list (coordinates y = 0 at the top)."""
        path = self.path(name)
        if text is None:
            lines = [
                f"CameraSizeX {size[0]}",
                f"CameraSizeY {size[1]}",
                f"RotationAndFlip {rotflip}",
            ]
            if pixels:
                lines.append("BadPixels " + " ".join(f"{x} {y}" for x, y in pixels))
            if columns:
                lines.append("BadColumns " + " ".join(map(str, columns)))
            if rows:
                lines.append("BadRows " + " ".join(map(str, rows)))
            text = "\n".join(lines) + "\n"
        path.write_text(text)
        return path


@pytest.fixture
def mk(tmp_path) -> Maker:
    return Maker(tmp_path)


@pytest.fixture
def unchanged():
    """``with unchanged(*paths):`` asserts the files are byte-identical afterwards."""
    from contextlib import contextmanager

    @contextmanager
    def _unchanged(*paths):
        before = {str(p): snapshot(p) if Path(p).is_dir() else sha256(p) for p in paths}
        yield
        after = {str(p): snapshot(p) if Path(p).is_dir() else sha256(p) for p in paths}
        assert after == before, "an input file was modified"

    return _unchanged


@pytest.fixture
def snap():
    return snapshot

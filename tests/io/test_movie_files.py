"""Which files are movies (expand_inputs) and when a movie is completely written
(movie_complete): MRC, TIFF and EER files cut at every length, frame mdocs, real SerialEM
mdocs from shared/cases/external/mdoc."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

from dedkit.errors import DedkitError
from dedkit.io.movies import (
    MOVIE_SUFFIXES,
    expand_inputs,
    frame_mdoc_expected,
    is_dedkit_output,
    list_movies,
    mdoc_movies,
    movie_complete,
)
from dedkit.io.mrc import MrcWriter

EXTERNAL_MDOC = Path(__file__).resolve().parents[3] / "shared" / "cases" / "external" / "mdoc"


def touch(path: Path, data: bytes = b"") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write_mrc(path: Path, frames=3, shape=(8, 10), dtype=np.int16, packing="none") -> Path:
    with MrcWriter(path, (frames, *shape), dtype, packing=packing) as writer:
        for i in range(frames):
            writer.write(np.full(shape, i % 15, dtype))
    return path


def write_tiff(path: Path, frames=4, shape=(8, 10), **kwargs) -> Path:
    with tifffile.TiffWriter(path, bigtiff=kwargs.pop("bigtiff", False)) as tif:
        for i in range(frames):
            page = np.full(shape, i, np.uint16)
            tif.write(page, photometric="minisblack", contiguous=False, **kwargs)
    return path


def as_eer(path: Path, compression=65001) -> Path:
    """An uncompressed TIFF relabelled as EER: movie_complete never decodes pages."""
    with tifffile.TiffFile(path, mode="r+b") as tif:
        for page in tif.pages:
            page.tags["Compression"].overwrite(compression)
    return path


def cut_copies(path: Path, tmp: Path, step: int = 1):
    """(length, copy) for every length shorter than the file."""
    data = path.read_bytes()
    for length in range(0, len(data), step):
        cut = tmp / f"cut{path.suffix}"
        cut.write_bytes(data[:length])
        yield length, cut


def test_movie_suffixes():
    assert MOVIE_SUFFIXES == (".mrc", ".mrcs", ".tif", ".tiff", ".eer")


# -- listing folders and expanding inputs ---------------------------------------------


def test_list_movies_sorted_hidden_and_other_files_left_out(tmp_path):
    for name in ("c.eer", "a.TIF", "b.mrcs", ".b.part-7.mrc", "gain.dm4", "a.TIF.mdoc"):
        touch(tmp_path / name)
    (tmp_path / "sub.tif").mkdir()
    assert [p.name for p in list_movies(tmp_path)] == ["a.TIF", "b.mrcs", "c.eer"]


def test_outputs_left_out_only_in_a_dedkit_output_folder(tmp_path):
    plain = tmp_path / "plain"
    for name in ("grid_ODD.tif", "x_DW.mrc", "x.mrc"):
        touch(plain / name)
    assert [p.name for p in list_movies(plain)] == ["grid_ODD.tif", "x.mrc", "x_DW.mrc"]

    out = tmp_path / "out"
    for name in ("m1.mrc", "m1_DW.mrc", "m1_EVN.mrc", "m1_ODD.mrc", "m1_align.json", "raw.tif"):
        touch(out / name)
    touch(out / "m2_DW.mrc")  # being renamed into place: its record is not there yet
    assert [p.name for p in list_movies(out)] == ["raw.tif"]
    assert is_dedkit_output(out / "m1.mrc") and not is_dedkit_output(out / "raw.tif")
    with pytest.raises(DedkitError, match="the pattern matches no movies"):
        expand_inputs([f"{out}/*.mrc"])
    assert expand_inputs([f"{out}/*"]) == [out / "raw.tif"]

    session = tmp_path / "session"
    touch(session / "session.json")
    touch(session / "m3_EVN.mrc")
    touch(session / "m3.mrc")  # no record: a movie left in the folder, taken
    assert [p.name for p in list_movies(session)] == ["m3.mrc"]


def test_expand_inputs_files_globs_folders_deduplicated_in_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("m_003.tif", "m_001.tif", "m_002.mrc", "notes.txt"):
        touch(Path("Frames") / name)
    movies = expand_inputs(["Frames/m_003.tif", "Frames/*.tif", "Frames", "./Frames/m_001.tif"])
    assert [str(p) for p in movies] == ["Frames/m_003.tif", "Frames/m_001.tif", "Frames/m_002.mrc"]
    assert expand_inputs("Frames/m_002.mrc") == [Path("Frames/m_002.mrc")]
    # a file named explicitly is taken whatever it is (the reader then judges it)
    assert expand_inputs(["Frames/notes.txt"]) == [Path("Frames/notes.txt")]


def test_expand_inputs_recursive_glob_and_glob_of_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    touch(Path("s1/Frames/a.tif"))
    touch(Path("s2/Frames/b.eer"))
    touch(Path("s2/Frames/b.eer.mdoc"), b"[FrameSet = 0]\n")
    assert [str(p) for p in expand_inputs(["**/*.eer", "s*/Frames"])] == [
        "s2/Frames/b.eer",
        "s1/Frames/a.tif",
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("missing.tif", "missing.tif: no such file or folder"),
        ("empty", "empty: the folder holds no movies"),
        ("Frames/*.eer", "Frames/*.eer: the pattern matches no movies"),
        ("Frames/*.txt", "Frames/*.txt: the pattern matches no movies"),
    ],
)
def test_expand_inputs_refuses_a_spec_that_matches_nothing(tmp_path, monkeypatch, spec, message):
    monkeypatch.chdir(tmp_path)
    touch(Path("Frames/m.tif"))
    touch(Path("Frames/notes.txt"))
    Path("empty").mkdir()
    with pytest.raises(DedkitError) as info:
        expand_inputs(["Frames/m.tif", spec])
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


# -- mdoc files -----------------------------------------------------------------------


def test_frame_mdoc_gives_the_stack_beside_it(tmp_path):
    stack = touch(tmp_path / "m_001.tif")
    mdoc = touch(tmp_path / "m_001.tif.mdoc", b"T = SerialEM\n\n[FrameSet = 0]\nNumSubFrames = 4\n")
    assert mdoc_movies(mdoc) == [stack]
    assert expand_inputs([mdoc, stack]) == [stack]


def test_subframe_paths_resolved_by_name_in_the_mdoc_folder_or_its_subfolder(tmp_path):
    text = (
        "ImageFile = TS.mrc\n\n"
        "[ZValue = 0]\nSubFramePath = X:\\sess\\frames\\a.tif\n\n"
        "[ZValue = 1]\nSubFramePath = X:\\sess\\frames\\b.tif\n\n"
        "[ZValue = 2]\nSubFramePath = X:\\sess\\frames\\c.tif\n"
    )
    mdoc = touch(tmp_path / "TS.mrc.mdoc", text.encode())
    touch(tmp_path / "a.tif")
    touch(tmp_path / "frames" / "b.tif")
    # c.tif is missing: listed in the mdoc's folder, so the session reports it as failed
    assert mdoc_movies(mdoc) == [tmp_path / "a.tif", tmp_path / "frames/b.tif", tmp_path / "c.tif"]


def test_mdoc_whose_stacks_are_all_missing_or_that_names_none(tmp_path):
    mdoc = touch(tmp_path / "TS.mrc.mdoc", b"[ZValue = 0]\nSubFramePath = D:\\f\\a.mrc\n")
    with pytest.raises(DedkitError, match="none of the 1 frame stack"):
        expand_inputs([mdoc])
    montage = touch(tmp_path / "mmm.mrc.mdoc", b"ImageFile = mmm.mrc\n\n[ZValue = 0]\nX = 1\n")
    touch(tmp_path / "mmm.mrc")  # the montage itself is not a frame stack
    with pytest.raises(DedkitError, match="names no frame stacks"):
        mdoc_movies(montage)
    # a pattern skips mdocs without frames (atlases, montages); an mdoc named alone does not
    touch(tmp_path / "a.mrc")
    assert expand_inputs([f"{tmp_path}/*.mdoc"]) == [tmp_path / "a.mrc"]
    orphan = touch(tmp_path / "lost.tif.mdoc", b"[FrameSet = 0]\nNumSubFrames = 4\n")
    with pytest.raises(DedkitError, match="frame mdoc without its stack: no file lost.tif"):
        mdoc_movies(orphan)


def external(name: str) -> Path:
    path = EXTERNAL_MDOC / name
    if not path.is_file():
        pytest.skip(f"{path} not present")
    return path


@pytest.mark.parametrize(
    ("name", "first", "count"),
    [
        ("mdocfile_tilt_series.mdoc", "TS_01_000_0.0.mrc", None),
        ("mdocfile_frame_set_single.mdoc", "s_mmm_00993_33.0_Oct08_07.39.05.tif", 1),
        ("mdocfile_frame_set_multiple.mdoc", "s_mmm_01013_33.0_Oct08_07.46.46.tif", 1),
    ],
)
def test_real_serialem_mdocs(tmp_path, name, first, count):
    """SerialEM's Windows SubFramePath entries, read with dedkit's mdoc parser."""
    from dedkit.io.mdoc import read_mdoc

    source = external(name)
    mdoc = read_mdoc(source)
    names = [s["SubFramePath"].rsplit("\\", 1)[1] for s in mdoc.sections if "SubFramePath" in s]
    assert names[0] == first
    if count is not None:
        assert len(names) == count
    copy = tmp_path / name
    shutil.copyfile(source, copy)
    for stack in names:
        touch(tmp_path / "frames" / stack)
    assert mdoc_movies(copy) == [tmp_path / "frames" / n for n in names]


def test_real_montage_mdoc_names_no_frames(tmp_path):
    source = external("mdocfile_montage_section.mdoc")
    with pytest.raises(DedkitError, match="names no frame stacks"):
        mdoc_movies(source)


# -- MRC completeness -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "packing", "shape"),
    [
        (np.int16, "none", (8, 10)),
        (np.float32, "none", (6, 7)),
        (np.uint8, "mode101", (5, 7)),  # 4 bits, odd width: rows padded to whole bytes
        (np.uint8, "half-bytes", (5, 8)),  # IMOD's mode 0 with half the X size
    ],
)
def test_mrc_complete_and_every_cut_incomplete(tmp_path, dtype, packing, shape):
    path = write_mrc(tmp_path / "m.mrc", frames=3, shape=shape, dtype=dtype, packing=packing)
    done, reason = movie_complete(path)
    assert done, reason
    assert "3 frames" in reason
    for length, cut in cut_copies(path, tmp_path, step=7):
        done, reason = movie_complete(cut)
        assert not done, (length, reason)
    done, reason = movie_complete(cut_copies_last(path, tmp_path))
    assert not done and "2 whole frames" in reason


def cut_copies_last(path: Path, tmp: Path) -> Path:
    cut = tmp / "last.mrc"
    cut.write_bytes(path.read_bytes()[:-1])
    return cut


def test_mrc_extended_header_counts(tmp_path):
    path = write_mrc(tmp_path / "m.mrc", frames=2)
    data = bytearray(path.read_bytes())
    data[92:96] = np.int32(100).tobytes()  # nsymbt
    (tmp_path / "short.mrc").write_bytes(bytes(data))
    assert not movie_complete(tmp_path / "short.mrc")[0]
    (tmp_path / "ext.mrc").write_bytes(bytes(data[:1024]) + bytes(100) + bytes(data[1024:]))
    assert movie_complete(tmp_path / "ext.mrc")[0]


def test_mrc_header_not_written_yet(tmp_path):
    path = touch(tmp_path / "m.mrc", bytes(1024 + 160))  # SerialEM's placeholder: nz 0
    done, reason = movie_complete(path)
    assert not done and "header" in reason
    assert not movie_complete(touch(tmp_path / "n.mrc", b"MRC"))[0]


# -- TIFF and EER completeness --------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs", [{}, {"compression": "zlib"}, {"bigtiff": True}], ids=["plain", "zip", "bigtiff"]
)
def test_tiff_complete_and_every_cut_incomplete(tmp_path, kwargs):
    path = write_tiff(tmp_path / "m.tif", frames=4, **kwargs)
    done, reason = movie_complete(path)
    assert done and "4 complete pages" in reason
    for length, cut in cut_copies(path, tmp_path):
        done, reason = movie_complete(cut)
        assert not done, (length, reason)


@pytest.mark.parametrize("compression", [65000, 65001, 65002])
def test_eer_is_judged_as_tiff(tmp_path, compression):
    path = as_eer(write_tiff(tmp_path / "m.eer", frames=5, shape=(16, 16)), compression)
    with tifffile.TiffFile(path) as tif:
        assert tif.pages[0].compression == compression
    assert movie_complete(path) == (True, "TIFF file holds 5 complete pages")
    for length, cut in cut_copies(path, tmp_path, step=5):
        assert not movie_complete(cut)[0], length


def test_other_files(tmp_path):
    assert movie_complete(tmp_path / "none.tif") == (False, "no such file")
    assert movie_complete(tmp_path)[1] == "not a regular file"
    assert not movie_complete(touch(tmp_path / "gain.dm4", b"x" * 4000))[0]
    assert not movie_complete(touch(tmp_path / "fake.tif", b"not a tiff at all"))[0]


# -- frame mdocs ----------------------------------------------------------------------


def test_frame_mdoc_expected_once_any_movie_has_one(tmp_path):
    a = write_tiff(tmp_path / "a.tif")
    b = write_tiff(tmp_path / "b.tif")
    assert not frame_mdoc_expected(tmp_path)
    assert movie_complete(b)[0]
    touch(tmp_path / "a.tif.mdoc", b"[FrameSet = 0]\n")
    assert frame_mdoc_expected(tmp_path)
    assert movie_complete(a)[0]
    done, reason = movie_complete(b)
    assert not done and reason.endswith("its frame mdoc b.tif.mdoc is not written yet")
    assert movie_complete(b, mdoc=False)[0]
    touch(tmp_path / "b.tif.mdoc")  # created, nothing written yet
    assert not movie_complete(b)[0]
    touch(tmp_path / "b.tif.mdoc", b"[FrameSet = 0]\n")
    assert movie_complete(b)[0]

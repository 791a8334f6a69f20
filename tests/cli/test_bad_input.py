"""Bad input through the command line: exit status 2, exactly one line on stderr starting
with "dedkit", no traceback, nothing written (no output, no hidden temporary file) and
inputs left byte-identical.

Every case snapshots the whole test folder (hashes of all files, hidden ones included)
before the command and compares after, which checks all three at once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import tifffile

from dedkit.errors import DedkitError
from dedkit.io.atomic import MARKER
from dedkit.io.mdoc import read_mdoc

NY, NX = 16, 24


def assert_refused(r, *words):
    """Exit 2, one line on stderr starting with 'dedkit', no traceback, nothing on stdout."""
    assert r.status == 2, r
    assert "Traceback" not in r.out + r.err, r
    lines = r.err_lines
    assert len(lines) == 1, r
    assert lines[0].startswith("dedkit"), r
    assert r.out == "", r
    for w in words:
        assert str(w) in lines[0], r
    return lines[0]


@pytest.fixture
def refused(run, snap, tmp_path):
    """``refused(*args, words=...)``: run, assert the refusal and that the folder is as it
    was (no output, no '.name.part-*' temporary, inputs unchanged)."""

    def _refused(*args, words=()):
        before = snap(tmp_path)
        r = run(*args)
        line = assert_refused(r, *words)
        after = snap(tmp_path)
        assert after == before, f"files changed: {set(after) ^ set(before)} {r}"
        hidden = [p for p in tmp_path.rglob(".*") if p.name != MARKER]
        assert not hidden, "hidden temporary left behind"
        return line

    return _refused


@pytest.fixture
def files(mk):
    """A valid mode-101 stack with an r/f title, a matching gain reference, a defect list."""
    raw = mk.counts()
    return {
        "raw": mk.mrc_4bit("raw.mrc", raw, titles=[mk.packed_title(0)]),
        "gain": mk.gain_mrc("gain.mrc", mk.gain_values()),
        "defects": mk.defects("defects.txt", pixels=[(3, 4)]),
        "frames": raw,
    }


def commands_reading(src, out):
    """One invocation of every command that reads a stack ``src``."""
    return {
        "norm": ["norm", src, "none", out],
        "rotflip": ["rotflip", src, out, "--op", "1"],
        "pack": ["pack", src, out, "--as", "mode101"],
        "unpack": ["unpack", src, out],
        "convert": ["convert", src, out],
        "header": ["header", src],
        "defectmap": ["defectmap", "DEFECTS", src, out],
    }


COMMANDS = ["norm", "rotflip", "pack", "unpack", "convert", "header", "defectmap"]


def _args(name, src, out, defects):
    args = commands_reading(src, out)[name]
    return [defects if a == "DEFECTS" else a for a in args]


# --------------------------------------------------------------------------------------
# damaged or impossible stacks
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS)
def test_truncated_mrc(mk, files, refused, command):
    src = files["raw"]
    data = src.read_bytes()
    cut = mk.path("cut.mrc")
    cut.write_bytes(data[: len(data) - 100])  # the last frame loses 100 bytes
    line = refused(*_args(command, cut, mk.path("out.mrc"), files["defects"]))
    assert "cut.mrc" in line and "truncated" in line


@pytest.mark.parametrize("command", ["norm", "convert", "header", "pack"])
def test_header_claiming_huge_nz_is_refused_before_allocating(mk, files, refused, command):
    data = bytearray(files["raw"].read_bytes())
    data[8:12] = np.int32(2**30).tobytes()
    huge = mk.path("huge.mrc")
    huge.write_bytes(bytes(data))
    tracemalloc.start()
    started = time.perf_counter()
    try:
        line = refused(*_args(command, huge, mk.path("out.mrc"), files["defects"]))
        seconds = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "huge.mrc" in line and str(2**30) in line
    assert seconds < 5
    assert peak < 50e6


@pytest.mark.parametrize("size", [0, 100, 1023])
@pytest.mark.parametrize("command", ["norm", "convert", "header"])
def test_file_shorter_than_a_header(mk, files, refused, size, command):
    short = mk.path("short.mrc")
    short.write_bytes(files["raw"].read_bytes()[:size])
    line = refused(*_args(command, short, mk.path("out.mrc"), files["defects"]))
    assert "short.mrc" in line and "1024" in line


def test_mrc_header_with_nonsense_sizes(mk, files, refused):
    data = bytearray(files["raw"].read_bytes())
    data[12:16] = np.int32(77).tobytes()  # no such mode
    bad = mk.path("bad.mrc")
    bad.write_bytes(bytes(data))
    refused("convert", bad, mk.path("out.mrc"), words=["bad.mrc", "mode"])


def test_garbage_tiff(mk, refused):
    bad = mk.path("bad.tif")
    bad.write_bytes(b"II*\x00" + np.random.default_rng(0).bytes(300))
    refused("convert", bad, mk.path("out.mrc"), words=["bad.tif"])
    refused("header", bad, words=["bad.tif"])


def test_not_a_tiff_at_all(mk, refused):
    bad = mk.path("text.tif")
    bad.write_text("this is not an image\n")
    refused("norm", bad, "none", mk.path("out.mrc"), words=["text.tif"])


def _tiff_with_damaged_last_page(mk):
    frames = mk.counts(dtype=np.uint16, high=1000)
    src = mk.tiff("damaged.tif", frames, compression="zstd")
    with tifffile.TiffFile(src) as t:
        offset, count = t.pages[2].dataoffsets[0], t.pages[2].databytecounts[0]
    data = bytearray(src.read_bytes())
    data[offset : offset + count] = b"\xff" * count
    src.write_bytes(bytes(data))
    return src


@pytest.mark.parametrize("out_name", ["out.mrc", "out.tif", "outfolder"])
def test_tiff_damaged_in_a_later_frame_leaves_nothing(mk, refused, out_name):
    # frames 0 and 1 are written before frame 2 fails: the temporary must go
    src = _tiff_with_damaged_last_page(mk)
    refused("convert", src, mk.path(out_name), words=["damaged.tif", "frame 2"])


def test_failure_midway_keeps_an_existing_output_with_force(mk, refused):
    src = _tiff_with_damaged_last_page(mk)
    out = mk.path("out.mrc")
    out.write_bytes(b"precious")
    refused("convert", src, out, "--force")
    assert out.read_bytes() == b"precious"


def test_cut_tiff(mk, refused):
    src = mk.tiff("whole.tif", mk.counts(dtype=np.uint16), compression="zstd")
    data = src.read_bytes()
    cut = mk.path("cut.tif")
    cut.write_bytes(data[: len(data) // 2])
    refused("convert", cut, mk.path("out.mrc"), words=["cut.tif"])


def test_tiff_pages_of_different_shapes(mk, refused):
    bad = mk.path("mixed.tif")
    with tifffile.TiffWriter(bad) as tw:
        tw.write(np.zeros((NY, NX), np.uint16), contiguous=False)
        tw.write(np.zeros((NY, NX + 2), np.uint16), contiguous=False)
    refused("convert", bad, mk.path("out.mrc"), words=["mixed.tif"])


def test_low_without_high_leaves_nothing(files, mk, refused):
    refused("norm", files["raw"], files["gain"], mk.path("out.mrc"), "--low", "3", words=["-h"])


# --------------------------------------------------------------------------------------
# gain references, r/f values, defect lists, mdoc
# --------------------------------------------------------------------------------------


def test_gain_of_incompatible_size(files, mk, refused):
    gain = mk.gain_mrc("small.mrc", np.ones((10, 10), np.float32))
    refused("norm", files["raw"], gain, mk.path("out.mrc"), words=["small.mrc", "fit"])


def test_gain_transposed_hints_at_rotflip(files, mk, refused):
    gain = mk.gain_mrc("turned.mrc", np.ones((NX, NY), np.float32))
    refused("norm", files["raw"], gain, mk.path("out.mrc"), words=["turned.mrc", "--rotflip"])


def test_gain_with_three_frames(files, mk, refused):
    gain = mk.mrc("three.mrc", np.ones((3, NY, NX), np.float32))
    refused("norm", files["raw"], gain, mk.path("out.mrc"), words=["three.mrc", "3 frames"])


def test_missing_gain(files, mk, refused):
    refused("norm", files["raw"], mk.path("nogain.mrc"), mk.path("out.mrc"), words=["nogain.mrc"])


def test_norm_rotflip_out_of_range(files, mk, refused):
    refused("norm", files["raw"], files["gain"], mk.path("out.mrc"), "--rotflip", "9", words=["9"])


@pytest.mark.parametrize("value", ["8", "-1", "12"])
def test_rotflip_op_out_of_range(files, mk, refused, value):
    refused("rotflip", files["raw"], mk.path("out.mrc"), "--op", value, words=[value])


def test_rotflip_minus_one_without_rf_in_titles(mk, refused):
    raw = mk.mrc_4bit("plain.mrc", mk.counts(), titles=["no rotation recorded here"])
    gain = mk.gain_mrc("gain.mrc", mk.gain_values())
    refused("norm", raw, gain, mk.path("out.mrc"), "--rotflip", "-1", words=["r/f"])


def test_rotflip_minus_one_on_a_tiff_without_titles(mk, refused):
    raw = mk.tiff("plain.tif", mk.counts(dtype=np.uint16))
    gain = mk.gain_mrc("gain.mrc", mk.gain_values())
    refused("norm", raw, gain, mk.path("out.mrc"), "-R", "-1", words=["r/f"])


MALFORMED_DEFECTS = [
    ("CameraSizeX 24\nCameraSizeY 16\nBadPixels 3 x\n", 3),
    ("CameraSizeX 24\nCameraSizeY 16\n# comment\nBadPixels 3 4 5\n", 4),
    ("CameraSizeX 24\nCameraSizeY sixteen\n", 2),
    ("CameraSizeX 24\nCameraSizeY 16\nRotationAndFlip 9\n", 3),
    ("CameraSizeX 24\nCameraSizeY 16\nUsableArea 1 2 3\n", 3),
]


@pytest.mark.parametrize("text, line", MALFORMED_DEFECTS)
def test_malformed_defects_name_file_and_line(files, mk, refused, text, line):
    bad = mk.defects("bad_defects.txt", text)
    msg = refused("norm", files["raw"], files["gain"], mk.path("out.mrc"), "--defects", bad)
    assert f"{bad}:{line}:" in msg
    msg = refused("defectmap", bad, files["raw"], mk.path("map.mrc"))
    assert f"{bad}:{line}:" in msg


def test_defects_without_camera_size(files, mk, refused):
    bad = mk.defects("nosize.txt", "BadPixels 1 2\n")
    refused("defectmap", bad, files["raw"], mk.path("map.mrc"), words=["nosize.txt", "CameraSize"])


def test_missing_defects_file(files, mk, refused):
    refused(
        "norm",
        files["raw"],
        files["gain"],
        mk.path("out.mrc"),
        "-D",
        mk.path("nodefects.txt"),
        words=["nodefects.txt"],
    )


def test_defect_list_for_another_camera(files, mk, refused):
    other = mk.defects("other.txt", size=(400, 300), pixels=[(1, 1)])
    refused("defectmap", other, files["raw"], mk.path("map.mrc"), words=["size"])


@pytest.mark.parametrize(
    "text, line",
    [
        ("PixelSpacing = 1.0\n\n[ZValue = 0\nTiltAngle = 0\n", 3),
        ("PixelSpacing = 1.0\n[FrameSet = 0]\n= 5\n", 3),
        ("a line without an equals sign\n", 1),
        ("T = title\n[ZValue = ]\n", 2),
    ],
)
def test_malformed_mdoc_names_file_and_line(tmp_path, text, line):
    path = tmp_path / "bad.mrc.mdoc"
    path.write_text(text)
    with pytest.raises(DedkitError) as info:
        read_mdoc(path)
    message = str(info.value)
    assert f"{path}:{line}:" in message
    assert "\n" not in message
    assert info.value.line == line


# --------------------------------------------------------------------------------------
# outputs
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_output_is_the_input(files, refused, force):
    refused("convert", files["raw"], files["raw"], *force, words=["same file"])


@pytest.mark.parametrize("spelling", ["./raw.mrc", "sub/../raw.mrc", "link.mrc", "hard.mrc"])
def test_output_is_the_input_spelled_differently(files, refused, mk, monkeypatch, spelling):
    monkeypatch.chdir(mk.folder)
    (mk.folder / "sub").mkdir()
    os.symlink("raw.mrc", mk.folder / "link.mrc")
    os.link(mk.folder / "raw.mrc", mk.folder / "hard.mrc")
    refused("convert", "raw.mrc", spelling, "--force", words=["same file"])
    refused("rotflip", spelling, "raw.mrc", "--op", "2", "--force", words=["same file"])


def test_norm_output_is_the_gain(files, refused):
    refused("norm", files["raw"], files["gain"], files["gain"], "--force", words=["same file"])


def test_norm_output_is_the_defect_list(files, mk, refused):
    # a defect list given a stack suffix, so that only the same-file rule can refuse it
    defects = mk.path("defects_list.mrc")
    shutil.copy(files["defects"], defects)
    refused(
        "norm", files["raw"], files["gain"], defects, "-D", defects, "--force", words=["same file"]
    )


def test_defectmap_output_is_the_like_file(files, refused):
    refused(
        "defectmap", files["defects"], files["raw"], files["raw"], "--force", words=["same file"]
    )


@pytest.mark.parametrize("command", ["norm", "rotflip", "pack", "unpack", "convert", "defectmap"])
def test_existing_output_needs_force(files, mk, run, refused, command):
    out = mk.path("out.mrc")
    out.write_bytes(b"precious bytes")
    args = _args(command, files["raw"], out, files["defects"])
    refused(*args, words=["--force"])
    assert out.read_bytes() == b"precious bytes"
    r = run(*args, "--force")
    assert r.status == 0, r
    assert out.read_bytes() != b"precious bytes"
    assert not [p for p in mk.folder.iterdir() if p.name.startswith(".")]


def test_existing_output_folder_needs_force(files, mk, run, refused):
    out = mk.path("frames")
    out.mkdir()
    (out / "mine.txt").write_text("mine")
    refused("convert", files["raw"], out, words=["--force"])
    # issue 13 item 1: --force never deletes a folder dedkit did not write
    refused("convert", files["raw"], out, "--force", words=["not written by dedkit"])
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    (out / "mine.txt").unlink()
    r = run("convert", files["raw"], out)  # an empty folder is used as it is
    assert r.status == 0, r
    refused("convert", files["raw"], out, words=["--force"])
    r = run("convert", files["raw"], out, "--force")  # dedkit's own folder: replaced
    assert r.status == 0, r
    names = sorted(p.name for p in out.iterdir())
    assert names == [".dedkit-output.json"] + [f"frames_00{i}.tif" for i in (1, 2, 3)]


def test_output_folder_missing(files, mk, refused):
    refused("convert", files["raw"], mk.path("nowhere") / "out.mrc", words=["nowhere"])


@pytest.mark.parametrize("command", COMMANDS)
def test_nonexistent_input(files, mk, refused, command):
    missing = mk.path("missing.mrc")
    refused(*_args(command, missing, mk.path("out.mrc"), files["defects"]), words=["missing.mrc"])


def test_unknown_input_suffix(files, mk, refused):
    odd = mk.path("raw.xyz")
    shutil.copy(files["raw"], odd)
    refused("convert", odd, mk.path("out.mrc"), words=["raw.xyz", "suffix"])
    refused("header", odd, words=["suffix"])


@pytest.mark.parametrize("command", ["norm", "convert", "rotflip", "pack"])
def test_unknown_output_suffix(files, mk, refused, command):
    args = _args(command, files["raw"], mk.path("out.xyz"), files["defects"])
    refused(*args, words=["suffix"])


@pytest.mark.parametrize(
    "target, name",
    [
        ("mode101", "out.tif"),
        ("half-bytes", "out.tiff"),
        ("tiff4", "out.mrc"),
        ("serialemccd", "out.mrc"),
    ],
)
def test_pack_target_and_suffix_disagree(files, mk, refused, target, name):
    refused("pack", files["raw"], mk.path(name), "--as", target, words=[target])


def test_pack_half_bytes_odd_width(mk, refused):
    src = mk.mrc("odd.mrc", mk.counts(nx=NX - 1, dtype=np.uint16))
    refused("pack", src, mk.path("out.mrc"), "--as", "half-bytes", words=["odd"])


def test_unpack_of_data_that_is_not_4bit(mk, refused):
    src = mk.mrc("shorts.mrc", mk.counts(dtype=np.int16))
    refused("unpack", src, mk.path("out.mrc"), words=["shorts.mrc", "4-bit"])


def test_convert_compression_to_mrc(files, mk, refused):
    refused("convert", files["raw"], mk.path("out.mrc"), "--compression", "lzw", words=["compress"])


def test_demo_into_an_existing_file(mk, refused):
    f = mk.path("afile")
    f.write_text("x")
    refused("demo", "-o", f, words=["afile"])


def test_header_of_an_empty_folder(mk, refused):
    (mk.folder / "empty").mkdir()
    refused("header", mk.path("empty"), words=["empty"])


def test_folder_with_unnumbered_file(mk, refused):
    folder = mk.folder_of_tiffs("frames", mk.counts(dtype=np.uint16))
    shutil.copy(folder / "img_1.tif", folder / "extra.tif")
    refused("convert", folder, mk.path("out.mrc"), words=["extra.tif"])


# --------------------------------------------------------------------------------------
# usage errors
# --------------------------------------------------------------------------------------

USAGE_ERRORS = {
    "no command": [],
    "unknown command": ["bogus"],
    "missing input": ["norm"],
    "missing output": ["norm", "raw.mrc", "gain.mrc"],
    "bad mode": ["norm", "raw.mrc", "gain.mrc", "out.mrc", "--mode", "int"],
    "bad scale": ["norm", "raw.mrc", "gain.mrc", "out.mrc", "--scale", "abc"],
    "option without value": ["norm", "raw.mrc", "gain.mrc", "out.mrc", "--mode"],
    "unknown option": ["convert", "raw.mrc", "out.tif", "--colour"],
    "missing --as": ["pack", "raw.mrc", "out.mrc"],
    "bad --as": ["pack", "raw.mrc", "out.mrc", "--as", "nibbles"],
    "missing --op": ["rotflip", "raw.mrc", "out.mrc"],
    "non-integer --op": ["rotflip", "raw.mrc", "out.mrc", "--op", "1.5"],
    "bad compression": ["convert", "raw.mrc", "out.tif", "--compression", "rar"],
    "demo unknown part": ["demo", "gold"],
    "extra argument": ["header", "raw.mrc", "more.mrc"],
}


@pytest.mark.parametrize("args", list(USAGE_ERRORS.values()), ids=list(USAGE_ERRORS))
def test_usage_errors_give_one_line(files, refused, mk, monkeypatch, args):
    monkeypatch.chdir(mk.folder)
    refused(*args)


def test_help_is_not_an_error(run):
    r = run("norm", "--help")
    assert r.status == 0
    assert "Usage:" in r.out and "--rotflip" in r.out
    assert r.err == ""


# --------------------------------------------------------------------------------------
# the same rules through the installed console script (stderr as a user sees it)
# --------------------------------------------------------------------------------------


def _script():
    script = shutil.which("dedkit") or str(Path(sys.executable).with_name("dedkit"))
    if not Path(script).exists():
        pytest.skip("the dedkit console script is not installed")
    return script


def _run_script(args, cwd, **env):
    environ = dict(os.environ, **env)
    environ.pop("DEDKIT_DEBUG", None)
    return subprocess.run(
        [_script(), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environ,
        timeout=120,
    )


@pytest.mark.parametrize("case", ["cut tiff", "garbage tiff", "missing --as"])
def test_console_script_bad_input_one_line(mk, snap, case):
    if case == "cut tiff":
        src = mk.tiff("whole.tif", mk.counts(dtype=np.uint16), compression="zstd")
        data = src.read_bytes()
        mk.path("cut.tif").write_bytes(data[: len(data) // 2])
        args = ["convert", "cut.tif", "out.mrc"]
    elif case == "garbage tiff":
        mk.path("bad.tif").write_bytes(b"II*\x00" + np.random.default_rng(0).bytes(300))
        args = ["convert", "bad.tif", "out.mrc"]
    else:
        mk.mrc("counts.mrc", mk.counts(dtype=np.uint16))
        args = ["pack", "counts.mrc", "out.mrc"]
    before = snap(mk.folder)
    p = _run_script(args, mk.folder)
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr
    lines = p.stderr.splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("dedkit"), p.stderr
    assert snap(mk.folder) == before


def test_console_script_warning_is_one_line_in_a_narrow_terminal(mk):
    counts = mk.counts(high=21, dtype=np.uint16)
    n_sat = int((counts > 15).sum())
    mk.mrc("counts.mrc", counts)
    p = _run_script(["pack", "counts.mrc", "out.mrc", "--as", "mode101"], mk.folder, COLUMNS="40")
    assert p.returncode == 0, p.stderr
    lines = p.stderr.splitlines()
    assert len(lines) == 1, p.stderr
    assert str(n_sat) in lines[0] and "saturated" in lines[0]

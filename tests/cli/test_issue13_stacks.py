"""Regression tests of issue 13 for the counting-camera frame-stack commands.

Item 5 (the r/f is part of the stack's info; rotflip updates it), item 6 (norm and pack on
float and complex input), item 12 (non-finite options, NaN in pack, defects out of range),
item 11 (defects overflow) and item 20 (norm -l message, IMOD mode numbers, rotflip -R).
"""

from __future__ import annotations

import mrcfile
import numpy as np
import pytest

from dedkit.frames.gain import normalize_frame, prepare_gain
from dedkit.frames.rotflip import compose_rotflip, rotflip, rotflip_shape
from dedkit.io.images import read_image
from dedkit.io.stack import open_stack

NY, NX = 16, 24
CAMERA = (NY, NX)  # (ny, nx) of the gain reference, in the camera's orientation


def title(rf: int, need: int | None = None) -> str:
    tail = f"r/f {rf}" if need is None else f"r/f {rf} need {need}"
    return f"SerialEMCCD: Frames . ., scaled by 1.00  {tail}"


def read_mrc(path) -> np.ndarray:
    with mrcfile.open(path, permissive=True) as m:
        data = np.array(m.data)
    return data.reshape(-1, *data.shape[-2:])


def stack_for_rotflip(mk, rf: int, name="frames.mrc", need=None):
    """Frames saved with r/f ``rf`` (their shape is the camera's after ``rf``) and a
    camera-oriented gain reference whose wrong orientation would show."""
    ny, nx = rotflip_shape(CAMERA, rf)
    frames = mk.counts(nz=2, ny=ny, nx=nx, high=16, seed=rf, dtype=np.uint16)
    path = mk.mrc(name, frames, [title(rf, need)])
    gain = mk.gain_mrc("gain.mrc", mk.gain_values(*CAMERA, seed=7))
    return path, gain, frames


# --------------------------------------------------------------------------------------
# item 5
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("rf", range(8))
def test_issue13_item5_readme_python_path_equals_norm_R_minus_1(mk, run, rf):
    """issue 13 item 5: the README's Python snippet (gain prepared from the stack's info)
    gives exactly what 'dedkit norm -R -1' writes, for every r/f."""
    path, gain, _ = stack_for_rotflip(mk, rf)
    out = mk.path("norm.mrc")
    r = run("norm", "-q", path, gain, out, "-R", "-1", "-n", "32", "-m", "ushort")
    assert r.status == 0, r
    with open_stack(path) as stack:
        assert stack.info.rotflip == rf
        reference = prepare_gain(read_image(gain), stack.info)
        assert reference.rotflip == rf
        python = np.stack(
            [
                normalize_frame(stack.read(i), reference, scale=32, dtype="uint16").data
                for i in range(len(stack))
            ]
        )
    np.testing.assert_array_equal(python, read_mrc(out))


def test_issue13_item5_prepare_gain_needs_the_rotflip(mk):
    """issue 13 item 5: no silent r/f 0: a frame size without rotflip= is refused, and
    so is a stack whose titles record no r/f."""
    from dedkit.errors import DedkitError

    gain = mk.gain_values(*CAMERA)
    with pytest.raises(TypeError, match="rotflip="):
        prepare_gain(gain, CAMERA)
    path = mk.mrc("untitled.mrc", mk.counts(nz=1, ny=CAMERA[0], nx=CAMERA[1]))
    with open_stack(path) as stack:
        assert stack.info.rotflip is None
        with pytest.raises(DedkitError, match="record no r/f"):
            prepare_gain(gain, stack.info)
        # an explicit value is taken
        assert prepare_gain(gain, stack.info, rotflip=0).rotflip == 0


@pytest.mark.parametrize("saved", [0, 2, 5])
@pytest.mark.parametrize("op", range(8))
def test_issue13_item5_rotflip_then_norm_orients_the_gain(mk, run, saved, op):
    """issue 13 item 5: after 'dedkit rotflip', 'norm -R -1' orients the gain reference
    like the rotated frames: the result is the rotated result of normalising first."""
    path, gain, _ = stack_for_rotflip(mk, saved)
    rotated = mk.path("rotated.mrc")
    assert run("rotflip", "-q", path, rotated, "-R", op).status == 0
    with open_stack(rotated) as stack:
        assert stack.info.rotflip == compose_rotflip(saved, op)
    first = mk.path("norm_then_rot.mrc")
    assert run("norm", "-q", path, gain, mk.path("n.mrc"), "-R", "-1").status == 0
    assert run("rotflip", "-q", mk.path("n.mrc"), first, "-R", op).status == 0
    second = mk.path("rot_then_norm.mrc")
    r = run("norm", "-q", rotated, gain, second, "-R", "-1")
    assert r.status == 0, r
    np.testing.assert_array_equal(read_mrc(second), read_mrc(first))


@pytest.mark.parametrize("need", [1, 6])
def test_issue13_item5_rotflip_of_unrotated_frames_updates_need(mk, run, need):
    """issue 13 item 5: frames saved unrotated ('r/f 0 need N') rotated by N become frames
    saved with r/f N (nothing more needed); rotated by another value they record both."""
    path, _, _ = stack_for_rotflip(mk, 0, need=need)
    out = mk.path("r.mrc")
    assert run("rotflip", "-q", path, out, "-R", need).status == 0
    with open_stack(out) as stack:
        info = stack.info.frame_titles
        assert (info.rotflip, info.rotflip_needed) == (need, None)
    out2 = mk.path("r2.mrc")
    assert run("rotflip", "-q", path, out2, "-R", 4).status == 0
    with open_stack(out2) as stack:
        info = stack.info.frame_titles
        assert info.rotflip == 4
        # what is still needed after 4 gives the needed orientation
        a = np.arange(6).reshape(2, 3)
        assert np.array_equal(rotflip(rotflip(a, 4), info.rotflip_needed), rotflip(a, need))


def test_issue13_item5_rotflip_keeps_an_unknown_rotflip_unknown(mk, run):
    """issue 13 item 5: titles without an r/f value (SerialEMCCD before 2014) get none
    after rotflip, so 'norm -R -1' refuses instead of guessing."""
    path = mk.mrc(
        "old.mrc",
        mk.counts(nz=1),
        ["SerialEMCCD: Dose fractionation image, scaled by 16.00", "  SuperRef_x.dm4"],
    )
    out = mk.path("r.mrc")
    assert run("rotflip", "-q", path, out, "-R", "1").status == 0
    with open_stack(out) as stack:
        assert stack.info.rotflip is None
        assert stack.info.frame_titles.gain_reference == "SuperRef_x.dm4"
    gain = mk.gain_mrc("gain.mrc", mk.gain_values(*CAMERA))
    r = run("norm", "-q", out, gain, mk.path("n.mrc"), "-R", "-1")
    assert r.status == 2 and "r/f" in r.err


# --------------------------------------------------------------------------------------
# item 6: float and complex input
# --------------------------------------------------------------------------------------


def float_stack(mk, kind: str, frames: np.ndarray):
    """The same counts as MRC mode 2, MRC mode 12 or a float32 TIFF."""
    if kind == "mrc2":
        return mk.mrc("f.mrc", frames.astype(np.float32))
    if kind == "mrc12":
        return mk.mrc("f.mrc", frames.astype(np.float16))
    return mk.tiff("f.tif", frames.astype(np.float32))


@pytest.mark.parametrize("kind", ["mrc2", "mrc12", "tiff"])
@pytest.mark.parametrize("with_gain", [True, False])
@pytest.mark.parametrize("mode", ["float", "short"])
def test_issue13_item6_norm_normalises_float_input(mk, run, kind, with_gain, mode):
    """issue 13 item 6: norm on MRC mode 2, mode 12 and float TIFF (with or without a
    gain) normalises like integer input instead of crashing in numba."""
    frames = mk.counts(nz=2, high=16).astype(np.float32)
    path = float_stack(mk, kind, frames)
    gain_values = mk.gain_values()
    gain = mk.gain_mrc("gain.mrc", gain_values) if with_gain else "none"
    out = mk.path("out.mrc")
    r = run("norm", "-q", path, gain, out, "-m", mode, "-n", "16")
    assert r.status == 0, r
    expected = frames * (gain_values if with_gain else 1) * 16
    if mode == "short":
        expected = np.floor(expected + 0.5)
    np.testing.assert_array_equal(read_mrc(out), expected)


def test_issue13_item6_float_input_with_nan(mk, run):
    """issue 13 item 6/12: NaN in float frames stays NaN in a float output and is written
    as 0, and counted, in an integer one."""
    frames = mk.counts(nz=1, high=16).astype(np.float32)
    frames[0, 2, 3] = np.nan
    path = mk.mrc("f.mrc", frames)
    r = run("norm", "-q", path, "none", mk.path("f_out.mrc"), "-m", "float")
    assert r.status == 0, r
    assert np.isnan(read_mrc(mk.path("f_out.mrc"))[0, 2, 3])
    r = run("norm", "-q", "--json", path, "none", mk.path("s_out.mrc"), "-m", "short")
    assert r.status == 0, r
    assert r.json["n_nan"] == 1
    assert read_mrc(mk.path("s_out.mrc"))[0, 2, 3] == 0
    r = run("norm", "-q", path, "none", mk.path("s2_out.mrc"), "-m", "short")
    assert "1 values were NaN" in r.err


@pytest.mark.parametrize("command", ["norm", "pack"])
def test_issue13_item6_complex_input_is_refused(mk, run, command):
    """issue 13 item 6: complex frames (MRC mode 4) are refused with one line naming the
    mode (they hold no counts), and nothing is written."""
    frames = mk.counts(nz=2).astype(np.complex64)
    path = mk.mrc("c.mrc", frames)
    out = mk.path("out.mrc")
    if command == "norm":
        r = run("norm", "-q", path, "none", out)
    else:
        r = run("pack", "-q", path, out, "--as", "mode101")
    assert r.status == 2, r
    assert len(r.err_lines) == 1 and "MRC mode 4" in r.err and "c.mrc" in r.err
    assert not out.exists()


def test_issue13_item6_kernel_inputs_are_few():
    """issue 13 item 6: every real input type goes to one of four kernel input types."""
    from dedkit.io.pack import KERNEL_INPUT_DTYPES, kernel_input

    for dtype in (
        np.int8,
        np.uint8,
        np.int16,
        np.uint16,
        np.int32,
        np.uint32,
        np.float16,
        np.float32,
        np.float64,
        np.bool_,
    ):
        assert kernel_input(np.zeros((2, 2), dtype)).dtype in KERNEL_INPUT_DTYPES


# --------------------------------------------------------------------------------------
# item 12: options and values that must not pass in silence
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "option",
    [
        ("--scale", "nan"),
        ("--scale", "inf"),
        ("-n", "-inf"),
        ("-n", "0"),
        ("-n", "-2"),
        ("-H", "nan"),
        ("-H", "inf"),
        ("-H", "5", "-l", "nan"),
    ],
)
def test_issue13_item12_non_finite_norm_options_are_refused(mk, run, option):
    """issue 13 item 12: --scale nan (all zeros), --scale inf (no saturation count) and
    -H nan (ignored) are refused: one line, exit 2, nothing written."""
    path = mk.mrc("in.mrc", mk.counts(nz=1))
    out = mk.path("out.mrc")
    r = run("norm", "-q", path, "none", out, *option)
    assert r.status == 2, r
    assert len(r.err_lines) == 1
    assert not out.exists()


def test_issue13_item12_a_finite_scale_that_overflows_float32_is_refused(mk, run):
    """issue 13 item 12: --scale 3e38 is finite, but 3e38 x any count overflows float32 and
    the output would hold inf and NaN made by dedkit itself: refused before writing."""
    path = mk.mrc("in.mrc", mk.counts(nz=1))
    out = mk.path("out.mrc")
    r = run("norm", "-q", path, "none", out, "--scale", "3e38", "-m", "float")
    assert r.status == 2 and "overflows float32" in r.err, r
    assert len(r.err_lines) == 1 and not out.exists()
    assert run("norm", "-q", path, "none", out, "--scale", "1e30", "-m", "float").status == 0


def test_issue13_item12_python_norm_options_are_checked_too(mk):
    """issue 13 item 12: the job refuses the same values from Python."""
    from dedkit.errors import DedkitError
    from dedkit.jobs.stacks import normalize_stack

    path = mk.mrc("in.mrc", mk.counts(nz=1))
    for kwargs in ({"scale": float("nan")}, {"scale": 1e39}, {"high": float("nan")}):
        with pytest.raises(DedkitError):
            normalize_stack(path, None, mk.path("out.mrc"), **kwargs)
        assert not mk.path("out.mrc").exists()


@pytest.mark.parametrize("target", ["mode101", "bytes"])
def test_issue13_item12_pack_counts_nan(mk, run, target):
    """issue 13 item 12: pack writes NaN as 0 and counts and reports it, as saturation."""
    frames = mk.counts(nz=2, high=16).astype(np.float32)
    frames[1, 0, 0] = frames[0, 5, 7] = np.nan
    path = mk.mrc("f.mrc", frames)
    out = mk.path("p.mrc")
    r = run("pack", "-q", "--json", path, out, "--as", target)
    assert r.status == 0, r
    assert r.json["n_nan"] == 2
    assert r.json["n_rounded"] == 0
    r = run("pack", "-q", path, mk.path("p2.mrc"), "--as", target)
    assert "2 values were NaN" in r.err
    with open_stack(out) as stack:
        assert stack.read(1)[0, 0] == 0 and stack.read(0)[5, 7] == 0


OUT_OF_CAMERA = [
    ("BadPixels 99999 99999", "BadPixels 99999 99999"),
    ("PartialBadColumn 3 1000000000 0 10", "PartialBadColumn 3 1000000000 0 10"),
    ("UsableArea 60 40 5 3", "UsableArea 60 40 5 3"),
    ("BadColumns 2 24", "BadColumns 24"),
    ("PartialBadRow 1 2 0 24", "PartialBadRow 1 2 0 24"),
]


@pytest.mark.parametrize(("line", "named"), OUT_OF_CAMERA)
def test_issue13_item12_defects_out_of_the_camera_are_ignored_with_a_warning(mk, run, line, named):
    """issue 13 item 12 (decision): a defect entry that does not fit in the camera is
    ignored with a warning naming the file, the line and the entry; the rest is
    corrected as if the entry were not there."""
    frames = mk.counts(nz=1, high=16, dtype=np.uint16)
    path = mk.mrc("in.mrc", frames)
    base = f"CameraSizeX {NX}\nCameraSizeY {NY}\nBadPixels 5 6\n"
    bad = mk.defects("bad.txt", base + line + "\n")
    good_line = " ".join(w for w in line.split() if w != "24") if line.startswith("BadC") else ""
    good = mk.defects("good.txt", base + (good_line + "\n" if good_line else ""))
    r = run("norm", "-q", path, "none", mk.path("a.mrc"), "-D", bad, "-m", "ushort")
    assert r.status == 0, r
    assert len(r.err_lines) == 1
    assert "warning" in r.err and "bad.txt" in r.err and "line 4" in r.err
    assert named in r.err and "ignored" in r.err
    assert run("norm", "-q", path, "none", mk.path("b.mrc"), "-D", good, "-m", "ushort").status == 0
    np.testing.assert_array_equal(read_mrc(mk.path("a.mrc")), read_mrc(mk.path("b.mrc")))


def test_issue13_item12_many_defects_out_of_the_camera_are_counted(mk, run):
    """issue 13 item 12: a list written for another camera names its first few ignored
    entries, then one line with the count (not one line per entry)."""
    path = mk.mrc("in.mrc", mk.counts(nz=1, high=16, dtype=np.uint16))
    lines = [f"BadPixels {1000 + k} {1000 + k}" for k in range(40)]
    bad = mk.defects("many.txt", f"CameraSizeX {NX}\nCameraSizeY {NY}\n" + "\n".join(lines))
    r = run("norm", "-q", path, "none", mk.path("a.mrc"), "-D", bad, "-m", "ushort")
    assert r.status == 0, r
    assert len(r.err_lines) == 6, r
    assert "35 more entries" in r.err_lines[-1] and "40 ignored in all" in r.err_lines[-1]


# --------------------------------------------------------------------------------------
# item 11: overflow in a defect list
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line", ["BadColumns 99999999999999999999999999999", "CameraSizeX 4294967296"]
)
def test_issue13_item11_defect_value_overflow_is_bad_input(mk, run, line):
    """issue 13 item 11: a value beyond 32-bit integers is one line and exit 2 (was
    'internal error', OverflowError, exit 3)."""
    path = mk.mrc("in.mrc", mk.counts(nz=1))
    text = f"CameraSizeX {NX}\nCameraSizeY {NY}\n{line}\n"
    if line.startswith("CameraSizeX"):
        text = f"{line}\nCameraSizeY {NY}\n"
    defects = mk.defects("d.txt", text)
    out = mk.path("out.mrc")
    r = run("norm", "-q", path, "none", out, "-D", defects)
    assert r.status == 2, r
    assert len(r.err_lines) == 1 and "d.txt" in r.err and "32-bit" in r.err
    assert not out.exists()


# --------------------------------------------------------------------------------------
# item 20: names and help
# --------------------------------------------------------------------------------------


def test_issue13_item20_low_alone_names_dash_H(mk, run):
    """issue 13 item 20: 'norm -l' alone names -H (-h is help)."""
    path = mk.mrc("in.mrc", mk.counts(nz=1))
    r = run("norm", "-q", path, "none", mk.path("out.mrc"), "-l", "3")
    assert r.status == 2
    assert "-H" in r.err and "(-h)" not in r.err


@pytest.mark.parametrize(
    ("number", "name"),
    [("0", "byte"), ("1", "short"), ("2", "float"), ("6", "ushort"), ("101", "4bit")],
)
def test_issue13_item20_norm_takes_imod_mode_numbers(mk, run, number, name):
    """issue 13 item 20: -m takes IMOD's mode numbers as well as clip's names."""
    path = mk.mrc("in.mrc", mk.counts(nz=1))
    gain = mk.gain_mrc("gain.mrc", mk.gain_values())
    assert run("norm", "-q", path, gain, mk.path("a.mrc"), "-m", number).status == 0
    assert run("norm", "-q", path, gain, mk.path("b.mrc"), "-m", name).status == 0
    with open_stack(mk.path("a.mrc")) as a, open_stack(mk.path("b.mrc")) as b:
        assert (a.info.mode, a.info.dtype) == (b.info.mode, b.info.dtype)
    np.testing.assert_array_equal(read_mrc(mk.path("a.mrc")), read_mrc(mk.path("b.mrc")))


def test_issue13_item20_rotflip_takes_R_and_hidden_op(mk, run):
    """issue 13 item 20: rotflip takes -R/--rotflip like the other commands; --op still
    works but is not shown; no value is a usage error."""
    frames = mk.counts(nz=1)
    path = mk.mrc("in.mrc", frames, [title(0)])
    for i, args in enumerate((["-R", "3"], ["--rotflip", "3"], ["--op", "3"])):
        out = mk.path(f"r{i}.mrc")
        assert run("rotflip", "-q", path, out, *args).status == 0
        np.testing.assert_array_equal(read_mrc(out)[0], rotflip(frames[0], 3))
    help_text = run("rotflip", "--help").out
    assert "-R, --rotflip" in help_text and "--op" not in help_text
    r = run("rotflip", "-q", path, mk.path("none.mrc"))
    assert r.status == 2 and "-R" in r.err
    r = run("rotflip", "-q", path, mk.path("none.mrc"), "-R", "1", "--op", "2")
    assert r.status == 2


def test_issue13_item20_norm_help_shows_defaults(run):
    """issue 13 item 20: every norm option with a value says its default."""
    help_text = " ".join(run("norm", "--help").out.split())
    for option in ("--scale", "--mode", "--high", "--low", "--defects", "--rotflip"):
        start = help_text.index(option)
        following = help_text[start : start + 260]
        assert "default" in following, option
    assert "IMOD mode number" in help_text


def test_issue13_item5_norm_without_R_says_the_titles_record_an_rotflip(mk, run):
    """issue 13 item 5: 'norm' without -R keeps clip's behaviour (the reference as it is)
    but says so when the titles record an r/f other than 0."""
    path, gain, _ = stack_for_rotflip(mk, 2)
    r = run("norm", "-q", path, gain, mk.path("n.mrc"))
    assert r.status == 0, r
    assert "record r/f 2" in r.err and "-R -1" in r.err
    r = run("norm", "-q", path, gain, mk.path("n2.mrc"), "-R", "-1")
    assert "record r/f" not in r.err


def test_issue13_item5_missing_rf_names_the_frames_file(mk, run):
    """issue 13 item 5: -R -1 on frames whose titles record no r/f names the file."""
    path = mk.mrc("norf.mrc", mk.counts(nz=1))
    r = run("norm", "-q", path, "none", mk.path("o.mrc"), "-R", "-1")
    assert r.status == 2 and r.err.startswith(f"dedkit: error: {path}: cannot find an r/f"), r

"""``dedkit align`` from the command line: end to end on the sample files and on a small
movie of known motion (--json), and bad input: one line on stderr, exit status 2, nothing
left behind."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dedkit.jobs.demo import write_samples


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("align") / "sample"
    write_samples(folder, frames=2, seed=3)
    return folder


def _movie(mk, shifts, shape=(96, 128), dose=40.0):
    """A uint16 MRC movie of one specimen moved by ``shifts`` (made zero-mean)."""
    rng = np.random.default_rng(5)
    ny, nx = shape
    image = 1 + 0.2 * np.real(
        np.fft.ifft2(
            np.fft.fft2(rng.normal(size=shape))
            / np.maximum(np.hypot(np.fft.fftfreq(nx)[None, :], np.fft.fftfreq(ny)[:, None]), 1 / nx)
        )
    )
    image = 1 + 0.2 * (image - image.mean()) / image.std()
    shifts = np.asarray(shifts, float) - np.mean(shifts, axis=0)
    ky, kx = np.fft.fftfreq(ny)[:, None], np.fft.fftfreq(nx)[None, :]
    frames = []
    for dx, dy in shifts:
        moved = np.real(
            np.fft.ifft2(np.fft.fft2(image) * np.exp(-2j * np.pi * (kx * dx + ky * dy)))
        )
        frames.append(rng.poisson(dose * np.clip(moved, 0, None)).astype(np.uint16))
    return mk.mrc("movie.mrc", np.array(frames)), shifts


def test_json_report_and_known_shifts(run, mk):
    truth = np.outer(np.linspace(0, 1, 6), [5.0, 3.0])
    movie, truth = _movie(mk, truth)
    out = mk.path("sum.mrc")
    r = run("align", movie, "-o", out, "--align-binning", 1, "--json",
            "--shifts", mk.path("s.csv"))  # fmt: skip
    assert r.status == 0, r.err
    d = json.loads(r.out)
    assert d["frames"] == 6
    shifts = np.array(d["shifts_px"])
    assert shifts.shape == (6, 2)
    assert np.sqrt(np.mean((shifts - shifts.mean(0) - truth) ** 2)) < 0.25
    assert d["dose_per_frame"] is None
    assert d["total_drift_px"] > 4
    assert d["outputs"] == {"sum": str(out), "shifts": str(mk.path("s.csv"))}
    assert set(d["stage_seconds"]) == {"read_normalize", "motion", "sum", "write"}
    assert "only the plain sum" in r.err


def test_sample_end_to_end_text(run, sample, tmp_path):
    out = tmp_path / "aligned.mrc"
    r = run("align", sample / "frames.mrc", "-o", out, "--gain", sample / "SuperRef.mrc",
            "--defects", sample / "defects.txt", "--rotflip", -1, "--reduce", 2,
            "--even-odd", "--star", tmp_path / "m.star", "--figure", tmp_path / "m.png",
            "-q")  # fmt: skip
    assert r.status == 0, r.err
    assert r.out.startswith("align: 2 frames aligned into")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["aligned.mrc", "aligned_DW.mrc", "aligned_EVN.mrc", "aligned_FRC.csv",
                     "aligned_ODD.mrc", "m.png", "m.star"]  # fmt: skip


def test_existing_output_and_force(run, mk):
    movie, _ = _movie(mk, [[0, 0], [1, 0], [2, 0]])
    out = mk.path("sum.mrc")
    out.write_bytes(b"old")
    r = run("align", movie, "-o", out)
    assert r.status == 2 and out.read_bytes() == b"old"
    assert r.err.count("\n") == 1
    assert run("align", movie, "-o", out, "--force").status == 0
    assert out.stat().st_size > 1000


@pytest.mark.parametrize(
    "args, words",
    [
        (["--patches", "0x5"], "patches"),
        (["--patches", "30x30"], "too many"),
        (["--group", "9"], "larger"),
        (["--align-binning", "0"], "align-binning"),
        (["--reduce", "0"], "reduce"),
        (["--dose", "nan"], "dose"),
        (["--truncate", "-3"], "truncate"),
        (["--mdoc", "missing.mdoc"], "missing.mdoc"),
    ],
)
def test_bad_options_one_line_exit_2(run, mk, args, words):
    movie, _ = _movie(mk, [[0, 0], [1, 0], [2, 0]])
    before = sorted(p.name for p in mk.folder.iterdir())
    r = run("align", movie, "-o", mk.path("sum.mrc"), *args)
    assert r.status == 2, r.err
    assert r.err.count("\n") == 1 and words in r.err, r.err
    assert sorted(p.name for p in mk.folder.iterdir()) == before


def test_bad_input_files(run, mk, sample):
    one = mk.mrc("one.mrc", np.ones((1, 32, 32), np.uint16))
    gain = mk.gain_mrc("gain.mrc", np.ones((10, 10)))
    movie, _ = _movie(mk, [[0, 0], [1, 0], [2, 0]])
    before = sorted(p.name for p in mk.folder.iterdir())
    cases = [
        ([one], "nothing to align"),
        ([movie, "--gain", gain], "does not fit"),
        ([sample / "frames.mrc", "--gain", sample / "SuperRef.mrc", "-R", 1], "fit"),
    ]
    for args, words in cases:
        r = run("align", *args, "-o", mk.path("sum.mrc"))
        assert r.status == 2 and words in r.err and r.err.count("\n") == 1, r.err
    assert sorted(p.name for p in mk.folder.iterdir()) == before


def test_help_names_the_options(run):
    r = run("align", "--help")
    assert r.status == 0
    for option in ("--gain", "--defects", "--rotflip", "--truncate", "--group",
                   "--align-binning", "--patches", "--bfactor", "--iterations",
                   "--tolerance", "--pairs", "--reduce", "--dose", "--pre-dose", "--voltage",
                   "--pixel-size", "--mdoc", "--even-odd", "--shifts", "--star",
                   "--figure", "--force", "--json"):  # fmt: skip
        assert option in r.out


def test_help_defaults_are_the_aligners(run):
    """The defaults the help states are those of dedkit.frames.align.estimate_motion."""
    import inspect

    from dedkit.frames.align import estimate_motion

    r = run("align", "--help")
    text = " ".join(r.out.split())
    defaults = inspect.signature(estimate_motion).parameters
    for name in ("bfactor", "iterations", "tolerance"):
        assert f"(default {defaults[name].default:g})" in text, name

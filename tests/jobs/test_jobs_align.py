"""``align_movie`` called directly: shifts recovered on small movies of known motion, the
outputs (sums, CSV, STAR, figure, JSON report), the memory modes of pass 2, and bad input
(one line, nothing left behind)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dedkit.errors import DedkitError
from dedkit.io import open_stack
from dedkit.io.stack import create_stack
from dedkit.jobs.align import (
    AlignReport,
    align_movie,
    default_align_binning,
    output_paths,
    parse_patches,
)

#: the truth's tolerance on recovered shifts, input pixels (the movies are small and
#: well exposed: the aligner does far better, this only catches a wrong sign or scale)
TOLERANCE_PX = 0.25


def specimen(shape, seed=0) -> np.ndarray:
    """A positive image of mean 1 with structure at all scales (1/f field + discs)."""
    rng = np.random.default_rng(seed)
    ny, nx = shape
    ky = np.fft.fftfreq(ny)[:, None]
    kx = np.fft.fftfreq(nx)[None, :]
    k = np.hypot(kx, ky)
    k[0, 0] = 1
    field = np.real(np.fft.ifft2(np.fft.fft2(rng.normal(size=shape)) / k))
    field = field / field.std()
    yy, xx = np.mgrid[0:ny, 0:nx]
    for _ in range(12):
        cy, cx, r = rng.uniform(0, ny), rng.uniform(0, nx), rng.uniform(3, 8)
        field -= 2.0 * ((yy - cy) ** 2 + (xx - cx) ** 2 < r * r)
    return 1.0 + 0.15 * field / field.std()


def shift_image(image, dx, dy) -> np.ndarray:
    """``image`` with its content moved by (dx, dy): out(x, y) = image(x - dx, y - dy)."""
    ny, nx = image.shape
    ky = np.fft.fftfreq(ny)[:, None]
    kx = np.fft.fftfreq(nx)[None, :]
    phase = np.exp(-2j * np.pi * (kx * dx + ky * dy))
    return np.real(np.fft.ifft2(np.fft.fft2(image) * phase))


def write_movie(path, shifts, *, shape=(128, 160), dose=30.0, seed=0, pixel_size=None):
    """A movie of Poisson counts (uint16 MRC) of one specimen moved by ``shifts`` (input
    pixels, Y up; made zero-mean as the contract's shifts are). Returns the truth."""
    shifts = np.asarray(shifts, float)
    shifts = shifts - shifts.mean(axis=0)
    rng = np.random.default_rng(seed)
    image = specimen(shape, seed)
    with create_stack(path, (len(shifts), *shape), np.uint16, pixel_size=pixel_size) as w:
        for dx, dy in shifts:
            w.write(rng.poisson(np.clip(dose * shift_image(image, dx, dy), 0, None)))
    return shifts


def drift(n, total=(6.0, -4.0)) -> np.ndarray:
    """A beam-induced-like trajectory: fast at first, then slow, ``total`` px in all."""
    t = 1 - np.exp(-np.arange(n) / (n / 4))
    t /= t[-1]
    return np.outer(t, total)


def entries(folder) -> list[str]:
    return sorted(p.name for p in Path(folder).iterdir())


# --------------------------------------------------------------------------- helpers


def test_default_binning_targets_1500_pixels():
    assert default_align_binning((4092, 5760)) == 4
    assert default_align_binning((8184, 11520)) == 8
    assert default_align_binning((4096, 4096)) == 3
    assert default_align_binning((100, 1500)) == 1


def test_output_names_follow_motioncor2():
    paths = output_paths("d/x.mrc", dose_weighted=True, even_odd=True)
    assert {k: p.name for k, p in paths.items()} == {
        "sum": "x.mrc", "dose_weighted": "x_DW.mrc", "even": "x_EVN.mrc",
        "odd": "x_ODD.mrc", "frc": "x_FRC.csv",
    }  # fmt: skip


@pytest.mark.parametrize("bad", ["0x5", "5", "ax3", "5x-1", (0, 5), (2.5, 2)])
def test_bad_patches_refused(bad):
    with pytest.raises(DedkitError, match="patches"):
        parse_patches(bad)


# ------------------------------------------------------------------- recovered shifts


@pytest.mark.parametrize("method", ["iterative", "pairs"])
def test_recovers_known_shifts(tmp_path, method):
    truth = write_movie(tmp_path / "movie.mrc", drift(8), pixel_size=1.1)
    report = align_movie(
        tmp_path / "movie.mrc", tmp_path / "sum.mrc", align_binning=1, method=method
    )
    assert isinstance(report, AlignReport)
    measured = np.array(report.shifts_px)
    assert measured.shape == (8, 2)
    err = measured - measured.mean(axis=0) - truth
    assert np.sqrt(np.mean(err**2)) < TOLERANCE_PX, measured
    path_length = np.sum(np.hypot(*np.diff(truth, axis=0).T))
    assert report.total_drift_px == pytest.approx(path_length, abs=1.0)
    # no dose known: only the plain sum, with a note
    assert sorted(report.outputs) == ["sum"]
    assert any("only the plain sum" in w for w in report.warnings)
    with open_stack(tmp_path / "sum.mrc") as stack:
        assert stack.info.shape == (1, 128, 160)
        assert stack.info.pixel_size[0] == pytest.approx(1.1)
        total = stack.read(0)
    assert total.dtype == np.float32
    assert total.mean() == pytest.approx(8 * 30.0, rel=0.05)


def test_shifts_in_input_pixels_with_reduce_and_binning(tmp_path):
    truth = write_movie(tmp_path / "movie.mrc", drift(6, (8.0, 6.0)), shape=(192, 256))
    report = align_movie(tmp_path / "movie.mrc", tmp_path / "sum.mrc", reduce=2, align_binning=2)
    assert report.output_shape == (96, 128) and report.align_shape == (48, 64)
    measured = np.array(report.shifts_px)
    err = measured - measured.mean(axis=0) - truth
    assert np.sqrt(np.mean(err**2)) < 2 * TOLERANCE_PX, measured


# 6 frames of 128 x 160: 491520 bytes as float32, 245760 as float16
@pytest.mark.parametrize("budget", [1, 300_000])
def test_float16_and_reread_sums_match_float32(tmp_path, budget):
    write_movie(tmp_path / "movie.mrc", drift(6))
    ref = align_movie(tmp_path / "movie.mrc", tmp_path / "a.mrc", align_binning=1)
    other = align_movie(
        tmp_path / "movie.mrc", tmp_path / "b.mrc", align_binning=1, memory_budget=budget
    )
    assert ref.frame_store == "float32"
    assert other.frame_store == ("reread" if budget == 1 else "float16")
    with open_stack(tmp_path / "a.mrc") as a, open_stack(tmp_path / "b.mrc") as b:
        x, y = a.read(0), b.read(0)
    assert np.max(np.abs(x - y)) < 1e-3 * np.max(np.abs(x))


# ---------------------------------------------------------------------------- outputs


@pytest.mark.slow
def test_all_outputs_from_sample_files(sample, tmp_path):
    """The sample's raw 4-bit frames with gain, defects, r/f from the titles and the mdoc's
    dose: every output written, read back."""
    out = tmp_path / "sum.mrc"
    report = align_movie(
        sample / "frames.mrc", out, gain=sample / "SuperRef.mrc",
        defects=sample / "defects.txt", rotflip_value=-1, reduce=2, even_odd=True,
        shifts=tmp_path / "shifts.csv", star=tmp_path / "movie.star",
        figure=tmp_path / "motion.png",
    )  # fmt: skip
    assert report.details["gain_rotflip"] == 2
    assert report.output_shape == (408, 576)
    assert report.dose_per_frame is not None and report.dose_per_frame > 0
    assert report.dose_source.startswith("mdoc")
    assert set(report.outputs) == {
        "sum", "dose_weighted", "even", "odd", "frc", "shifts", "star", "figure"
    }  # fmt: skip
    for path in report.outputs.values():
        assert Path(path).is_file()
    assert not [n for n in entries(tmp_path) if n.startswith(".")]  # no temporaries
    for kind in ("sum", "dose_weighted", "even", "odd"):
        with open_stack(report.outputs[kind]) as stack:
            assert stack.info.shape == (1, 408, 576)
            assert stack.info.pixel_size[0] == pytest.approx(2 * report.pixel_size)
    from dedkit.io.motion_files import read_shifts_csv

    assert np.allclose(read_shifts_csv(tmp_path / "shifts.csv"), report.shifts_px, atol=1e-3)
    assert (tmp_path / "motion.png").read_bytes()[:4] == b"\x89PNG"
    d = json.loads(json.dumps(report.to_dict()))
    assert d["frames"] == 2 and len(d["shifts_px"]) == 2
    assert set(d["stage_seconds"]) == {"read_normalize", "motion", "sum", "write"}
    for key in ("dose_per_frame", "total_drift_px", "outputs"):
        assert key in d


def test_star_file_reads_back(sample, tmp_path):
    starfile = pytest.importorskip("starfile")
    report = align_movie(
        sample / "frames.mrc", tmp_path / "sum.mrc", gain=sample / "SuperRef.mrc",
        rotflip_value=-1, reduce=2, star=tmp_path / "movie.star",
    )  # fmt: skip
    blocks = starfile.read(tmp_path / "movie.star", always_dict=True)
    assert "general" in blocks and "global_shift" in blocks
    shifts = blocks["global_shift"]
    assert len(shifts) == report.frames


def test_existing_output_needs_force(tmp_path):
    write_movie(tmp_path / "movie.mrc", drift(4))
    (tmp_path / "sum.mrc").write_bytes(b"old")
    with pytest.raises(DedkitError, match="exists"):
        align_movie(tmp_path / "movie.mrc", tmp_path / "sum.mrc")
    assert (tmp_path / "sum.mrc").read_bytes() == b"old"
    align_movie(tmp_path / "movie.mrc", tmp_path / "sum.mrc", force=True)
    assert (tmp_path / "sum.mrc").stat().st_size > 1000


def test_failure_at_the_end_leaves_nothing(tmp_path, monkeypatch):
    """Outputs are committed together: a figure that cannot be drawn leaves no sum."""
    pytest.importorskip("matplotlib")
    write_movie(tmp_path / "movie.mrc", drift(4))
    (tmp_path / "sum.mrc").write_bytes(b"old")
    before = entries(tmp_path)
    import dedkit.jobs.align as job

    def broken(*args, **kwargs):
        raise DedkitError("figure failed")

    monkeypatch.setattr(job, "motion_figure", broken)
    with pytest.raises(DedkitError, match="figure failed"):
        align_movie(
            tmp_path / "movie.mrc", tmp_path / "sum.mrc", dose=1.0, pixel_size=1.0,
            shifts=tmp_path / "s.csv", figure=tmp_path / "f.png", force=True,
        )  # fmt: skip
    assert entries(tmp_path) == before
    assert (tmp_path / "sum.mrc").read_bytes() == b"old"


def test_dose_option_gives_dose_weighted_sum(tmp_path):
    write_movie(tmp_path / "movie.mrc", drift(4), pixel_size=1.2)
    report = align_movie(
        tmp_path / "movie.mrc", tmp_path / "sum.mrc", dose=1.5, pre_dose=2.0, voltage=200
    )
    assert report.dose_per_frame == pytest.approx(1.5)
    assert report.frame_doses == [1.5] * 4
    assert report.pre_dose == 2.0 and report.voltage_kv == 200
    assert (tmp_path / "sum_DW.mrc").is_file()


def test_progress_covers_both_passes(tmp_path):
    write_movie(tmp_path / "movie.mrc", drift(4))
    calls = []
    align_movie(
        tmp_path / "movie.mrc", tmp_path / "sum.mrc", progress=lambda d, t: calls.append((d, t))
    )
    assert calls[-1] == (9, 9)
    done = [d for d, _ in calls]
    assert done == sorted(done)


# -------------------------------------------------------------------------- bad input


def _refused(folder, match, *args, **kwargs):
    before = entries(folder)
    with pytest.raises(DedkitError, match=match) as info:
        align_movie(*args, **kwargs)
    assert "\n" not in str(info.value)
    assert entries(folder) == before, "something was left behind"


def test_gain_of_another_size(tmp_path):
    write_movie(tmp_path / "movie.mrc", drift(4))
    with create_stack(tmp_path / "gain.mrc", (1, 50, 50), np.float32) as w:
        w.write(np.ones((50, 50), np.float32))
    _refused(tmp_path, "does not fit", tmp_path / "movie.mrc", tmp_path / "sum.mrc",
             gain=tmp_path / "gain.mrc")  # fmt: skip


def test_wrong_rotflip(sample, tmp_path):
    # r/f 1 turns the (non-square) reference by 90 degrees: it no longer fits the frames
    _refused(tmp_path, "rotflip|r/f", sample / "frames.mrc", tmp_path / "sum.mrc",
             gain=sample / "SuperRef.mrc", rotflip_value=1)  # fmt: skip


def test_mdoc_frame_count_mismatch(sample, tmp_path):
    text = (sample / "frames.mrc.mdoc").read_text()
    mdoc = tmp_path / "wrong.mdoc"
    mdoc.write_text(text.replace("NumSubFrames = 2", "NumSubFrames = 7"))
    _refused(tmp_path, "(?i)frame", sample / "frames.mrc", tmp_path / "sum.mrc", mdoc=mdoc)


def test_truncated_stack(tmp_path):
    write_movie(tmp_path / "movie.mrc", drift(4))
    data = (tmp_path / "movie.mrc").read_bytes()
    (tmp_path / "movie.mrc").write_bytes(data[: len(data) - 5000])
    _refused(tmp_path, "movie.mrc", tmp_path / "movie.mrc", tmp_path / "sum.mrc")


def test_one_frame(tmp_path):
    write_movie(tmp_path / "movie.mrc", [[0.0, 0.0]])
    _refused(tmp_path, "nothing to align", tmp_path / "movie.mrc", tmp_path / "sum.mrc")


@pytest.mark.parametrize(
    "options, match",
    [
        ({"patches": "0x5"}, "patches"),
        ({"patches": "40x40"}, "patches are too many"),
        ({"group": 9}, "group 9 is larger"),
        ({"group": 0}, "group"),
        ({"align_binning": 0}, "binning"),
        ({"align_binning": 100}, "binning"),
        ({"reduce": 0}, "reduction"),
        ({"dose": -1.0}, "dose"),
        ({"pixel_size": float("nan")}, "pixel size"),
        ({"truncate": float("inf")}, "truncat"),
        ({"iterations": 0}, "iterations"),
        ({"method": "best"}, "method"),
    ],
)
def test_absurd_options(tmp_path, options, match):
    write_movie(tmp_path / "movie.mrc", drift(4))
    _refused(tmp_path, match, tmp_path / "movie.mrc", tmp_path / "sum.mrc", **options)


def test_output_is_an_input(tmp_path):
    write_movie(tmp_path / "movie.mrc", drift(4))
    _refused(tmp_path, "same file", tmp_path / "movie.mrc", tmp_path / "sum.mrc",
             shifts=tmp_path / "movie.mrc", force=True)  # fmt: skip


def test_truncate_replaces_hot_pixels(tmp_path):
    write_movie(tmp_path / "movie.mrc", drift(4))
    with open_stack(tmp_path / "movie.mrc") as stack:
        frames = np.array([stack.read(i) for i in range(4)])
    frames[:, 40, 50] = 5000
    with create_stack(tmp_path / "hot.mrc", frames.shape, np.uint16) as w:
        for f in frames:
            w.write(f)
    report = align_movie(tmp_path / "hot.mrc", tmp_path / "sum.mrc", truncate=1000)
    assert report.details["truncated_pixels"] == 4
    assert any("truncation" in w for w in report.warnings)
    with open_stack(tmp_path / "sum.mrc") as stack:
        total = stack.read(0)
    assert total.max() < 4 * 1000


def test_mdoc_none_and_tiff_output(sample, tmp_path):
    report = align_movie(
        sample / "frames.mrc", tmp_path / "sum.tif", gain=sample / "SuperRef.mrc",
        rotflip_value=-1, mdoc="none",
    )  # fmt: skip
    assert report.dose_per_frame is None and sorted(report.outputs) == ["sum"]
    with open_stack(tmp_path / "sum.tif") as stack:
        assert stack.info.shape == (1, 816, 1152)


def test_gain_without_rotflip_is_noted(sample, tmp_path):
    report = align_movie(
        sample / "frames.mrc", tmp_path / "sum.mrc", gain=sample / "SuperRef.mrc", mdoc="none"
    )
    assert any("--rotflip -1" in w for w in report.warnings)

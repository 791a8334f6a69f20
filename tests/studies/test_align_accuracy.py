"""Study align-accuracy: its measures, on a stand-in aligner that knows the truth, and
on dedkit's aligner once it is there."""

import sys
import types
from dataclasses import dataclass

import numpy as np
import pytest

from dedkit.errors import DedkitError
from dedkit.sim import simulate_movie
from dedkit.studies import align_accuracy as study


def test_shift_rms_removes_constant_offset():
    true = np.array([[0.0, 0.0], [3.0, 4.0], [-3.0, -4.0]])
    rms, offset = study.shift_rms(true + [2.0, -1.0], true)
    assert rms == 0.0 and offset.tolist() == [2.0, -1.0]
    noisy = true + [[0.3, 0.0], [-0.3, 0.0], [0.0, 0.0]]
    assert study.shift_rms(noisy, true)[0] == pytest.approx(np.sqrt(0.06))


def test_field_rms_of_truth_and_of_global_only():
    movie = simulate_movie((64, 64), 6, 1.0, drift=5.0, local_amplitude=2.0, seed=3)

    def truth(i, x, y):
        lx, ly = movie.local(i, x, y)
        return movie.shifts[i][0] + lx + 1.5, movie.shifts[i][1] + ly

    def global_only(i, x, y):
        return movie.shifts[i][0] + 0 * x, movie.shifts[i][1] + 0 * y

    assert study.field_rms(truth, movie) == pytest.approx(0.0, abs=1e-12)
    assert 0.3 < study.field_rms(global_only, movie) < 2.0


def test_fourier_shift_convention():
    image = np.zeros((16, 16))
    image[5, 3] = 1.0
    moved = study.fourier_shift(image, 2.0, 1.0)  # +dx columns, +dy rows
    assert np.unravel_index(np.argmax(moved), moved.shape) == (6, 5)


def test_corrected_sums_and_offset():
    movie = simulate_movie((96, 96), 6, 20.0, drift=6.0, seed=2)
    ideal = study.ideal_sum(movie)
    bands, _ = study.frc_bands(ideal, movie.specimen, 16)
    assert bands["frc_25"] > 0.5
    # a constant error of the shifts moves the sum; frc_bands moves the specimen alike
    offset = np.array([0.7, -0.4])
    off = study.corrected_sum(movie.frames, movie.shifts + offset, "fourier")
    with_offset, _ = study.frc_bands(off, movie.specimen, 16, offset)
    without, _ = study.frc_bands(off, movie.specimen, 16)
    # (not exactly: the frames' edges wrap around in a Fourier shift)
    assert with_offset["frc_75"] == pytest.approx(bands["frc_75"], abs=0.03)
    assert without["frc_75"] < with_offset["frc_75"] - 0.03
    for method in ("spline", "linear"):
        other, _ = study.frc_bands(
            study.corrected_sum(movie.frames, movie.shifts, method), movie.specimen, 16
        )
        assert other["frc_50"] > 0.5 * bands["frc_50"]
    with pytest.raises(DedkitError):
        study.corrected_sum(movie.frames, movie.shifts, "nearest")


# a stand-in for dedkit.frames.align that returns the truth moved by a constant ----------
@dataclass
class _Local:
    movie: object

    def displacement(self, index, x, y):
        return self.movie.local(index, x, y)


@dataclass
class _Estimate:
    shifts: np.ndarray
    local: object = None
    iterations: int = 1
    converged: bool = True

    def scaled(self, factor):
        return self


class _Sums:
    def __init__(self, shape, motion, interpolation="fourier"):
        self.motion, self.total = motion, np.zeros(shape)

    def add(self, index, frame):
        dx, dy = self.motion.shifts[index]
        self.total += study.fourier_shift(frame, -dx, -dy)

    def result(self):
        return {"sum": self.total}


@pytest.fixture
def oracle(monkeypatch):
    seen = {}
    original = study.MovieCase.simulate

    def simulate(self):
        seen["movie"] = original(self)
        return seen["movie"]

    def estimate_motion(frames, *, group=1, patches=None):
        movie = seen["movie"]
        local = _Local(movie) if patches and movie.local is not None else None
        return _Estimate(movie.shifts + [0.25, -0.5], local)

    fake = types.ModuleType("dedkit.frames.align")
    fake.estimate_motion, fake.AlignedSums = estimate_motion, _Sums
    fake.MotionEstimate = _Estimate
    monkeypatch.setitem(sys.modules, "dedkit.frames.align", fake)
    monkeypatch.setattr(study.MovieCase, "simulate", simulate)
    return seen


def test_run_with_an_oracle(oracle):
    calls = []
    result = study.run(
        size=96,
        n_frames=5,
        doses=(2.0,),
        drift=5.0,
        local_amplitude=1.5,
        progress=lambda d, t: calls.append((d, t)),
    )
    assert calls == [(1, 2), (2, 2)]
    assert [r["mode"] for r in result.rows] == ["global", "local"]
    for row in result.rows:
        assert row["rms_global"] == pytest.approx(0.0, abs=1e-9)
        assert row["frc_25"] > 0.1
    assert result.rows[0]["rms_local"] == pytest.approx(0.0, abs=1e-9)
    assert result.rows[1]["rms_local"] == pytest.approx(0.0, abs=1e-9)
    # a perfect global estimate gives the ideal sum
    assert result.rows[0]["frc_50"] == pytest.approx(result.rows[0]["ideal_50"], abs=0.02)
    assert set(result.report["correction"][0]) == {
        "dose",
        "fourier",
        "spline",
        "linear",
        "dedkit_fourier",
        "dedkit_cubic",
    }
    assert "global RMS" in result.text()
    fig = study.figure(result)
    assert len(fig.axes) == 3


@pytest.mark.parametrize(
    "kwargs", [{"size": 16}, {"n_frames": 2}, {"doses": ()}, {"doses": (0.0,)}, {"drift": -1}]
)
def test_bad_settings(kwargs):
    with pytest.raises(DedkitError):
        study.run(**kwargs)


def test_dedkit_aligner_recovers_a_drift():
    pytest.importorskip("dedkit.frames.align")
    if not hasattr(sys.modules["dedkit.frames.align"], "estimate_motion"):
        pytest.skip("dedkit.frames.align.estimate_motion is not there yet")
    movie = simulate_movie((256, 256), 10, 4.0, drift=10.0, seed=5)
    found = study.measure_dedkit(movie)
    assert found["rms_global"] < 0.6  # a small movie: a smoke test, the figures are the study's
    assert found["frc_25"] > 0.25

"""Study ``coincidence``: run and figure."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dedkit.camera import coincidence_factor
from dedkit.errors import DedkitError
from dedkit.jobs.study import write_study_figure
from dedkit.studies import StudyResult
from dedkit.studies.coincidence import figure, run


@pytest.fixture(scope="module")
def result():
    return run()


def test_result_shape(result):
    assert isinstance(result, StudyResult) and result.name == "coincidence"
    keys = [c[0] for c in result.columns]
    for row in result.rows:
        assert set(row) == set(keys)
    assert {r["camera"] for r in result.rows} == {"K2", "K3"}
    json.dumps(result.report)  # the --json report is plain JSON


def test_correction_recovers_the_true_rate(result):
    for cam, data in result.report["cameras"].items():
        true = np.array(data["true_rate"])
        measured = np.array(data["measured_rate"])
        corrected = np.array(data["corrected_rate"], dtype=float)
        gain = np.array(data["noise_gain"])
        # Poisson noise of the counted electrons over 1e6 pixels, amplified by the gain
        sigma = np.sqrt(measured / 1e6) / measured * gain
        assert np.all(np.abs(corrected / true - 1) < 5 * sigma + 1e-12), cam
        # uncorrected, the measured rate is low by at least the detection efficiency
        assert np.all(measured < true * 0.9)


def test_k3_is_the_k2_at_375_times_the_rate(result):
    k2, k3 = result.report["cameras"]["K2"], result.report["cameras"]["K3"]
    np.testing.assert_allclose(np.array(k3["true_rate"]), 3.75 * np.array(k2["true_rate"]))
    np.testing.assert_allclose(k3["coincidence_factor"], k2["coincidence_factor"], rtol=1e-12)


def test_seed_points_compared(result):
    points = result.report["seed_points"]
    assert [p["k2_true_rate"] for p in points] == [5.0, 7.5, 10.0, 20.0]
    assert [p["seed_factor"] for p in points] == [0.97, 0.94, 0.87, 0.6]
    for p in points:
        assert abs(p["difference"]) < 0.01
        assert p["model_factor"] == pytest.approx(float(coincidence_factor(p["k2_true_rate"])))
    assert any("0.97 at 5" in n for n in result.notes)


def test_noise_gain_grows_toward_saturation(result):
    gain = result.report["cameras"]["K2"]["noise_gain"]
    assert gain[0] == pytest.approx(1.0, abs=0.01)
    assert all(b > a for a, b in zip(gain, gain[1:], strict=False))


def test_seeded_and_reproducible():
    a = run(cameras=("K2",), k2_rates=(5.0, 10.0), seed=7)
    b = run(cameras=("K2",), k2_rates=(5.0, 10.0), seed=7)
    c = run(cameras=("K2",), k2_rates=(5.0, 10.0), seed=8)
    assert a.rows == b.rows
    assert a.report["cameras"]["K2"]["measured_rate"] != c.report["cameras"]["K2"]["measured_rate"]


def test_saturated_measurement_has_no_correction():
    # 10 pixels: counting noise puts some rates near the peak above the largest count
    r = run(cameras=("K2",), k2_rates=(35.0, 37.0, 38.0), pixels=10, seed=1)
    corrected = r.report["cameras"]["K2"]["corrected_rate"]
    measured = r.report["cameras"]["K2"]["measured_rate"]
    top = r.report["cameras"]["K2"]["max_counted_rate"]
    for m, c in zip(measured, corrected, strict=True):
        assert (c is None) == (m > top)
    assert None in corrected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cameras": ("CCD",)}, "does not count"),
        ({"cameras": ()}, "no camera"),
        ({"k2_rates": (5.0, 40.0)}, "must stay below"),
        ({"k2_rates": (-1.0,)}, "positive"),
        ({"pixels": 0}, "positive"),
    ],
)
def test_bad_input(kwargs, message):
    with pytest.raises(DedkitError, match=message):
        run(**kwargs)


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    small = run(k2_rates=(2.0, 10.0, 20.0), curve_points=50)
    # the study draws, the job writes (issue 14: studies write no files)
    assert len(figure(small).axes) == 2 and list(tmp_path.iterdir()) == []
    path = write_study_figure(small, tmp_path / "coincidence.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert [p.name for p in tmp_path.iterdir()] == ["coincidence.png"]  # no temporary left

import numpy as np
import pytest

from dedkit.errors import DedkitError
from dedkit.jobs.study import write_study_figure
from dedkit.studies import StudyResult
from dedkit.studies.rounding_dqe import (
    LOSS,
    MULTIPLIER,
    SEED_TABLE,
    SPREAD,
    dqe_loss,
    expected_loss,
    paired_outputs,
    run,
)


def test_paired_outputs_follow_the_five_steps(rng):
    dose = 0.5
    yf, yr = paired_outputs(dose, 400_000, rng)
    assert yf.shape == yr.shape
    # rounding moves each value by at most half a unit, to an integer
    assert np.all(np.abs(yr - yf) <= 0.5) and np.all(yr == np.round(yr))
    # nonzero trials: P(n > 0); of them (1 - 0.13) keep a value
    assert yf.size / 400_000 == pytest.approx(1 - np.exp(-dose), abs=0.003)
    assert np.mean(yf > 0) == pytest.approx(1 - LOSS, abs=0.003)
    # one-electron outputs spread by 0.05 x 16 around 16
    one = yf[(yf > 8) & (yf < 24)]
    assert one.mean() == pytest.approx(MULTIPLIER, abs=0.01)
    assert one.std() == pytest.approx(SPREAD * MULTIPLIER, rel=0.02)


def test_float_dqe_matches_its_closed_form(rng):
    for dose in (0.1, 2.0):
        found = dqe_loss(dose, 2_000_000, rng, batches=10)
        keep = 1 - LOSS
        second = keep * (1 + SPREAD**2) * (dose + dose**2)
        dqe = (keep * dose) ** 2 / (second - (keep * dose) ** 2) / dose
        assert found["dqe_float"] == pytest.approx(dqe, rel=0.01)


def test_paired_loss_is_measured_far_below_its_size_and_matches_the_closed_form(rng):
    for dose in (0.1, 1.0):
        found = dqe_loss(dose, 2_000_000, rng, batches=10)
        exp_abs, exp_rel = expected_loss(dose)
        assert found["abs_loss"] > 5 * found["abs_loss_err"]
        assert abs(found["abs_loss"] - exp_abs) < 4 * found["abs_loss_err"] + 0.05 * exp_abs
        assert abs(found["rel_loss"] - exp_rel) < 4 * found["rel_loss_err"] + 0.05 * exp_rel
        assert found["rel_loss"] == pytest.approx(found["abs_loss"] / found["dqe_float"])


def test_closed_form_falls_with_dose_and_scales_with_the_multiplier():
    rel = [expected_loss(d)[1] for d in (0.1, 0.5, 1.0, 2.0)]
    assert all(a > b for a, b in zip(rel, rel[1:], strict=False))
    assert 1e-4 < rel[-1] < rel[0] < 5e-4


def test_run_report_and_table():
    result = run(seed=3, samples=200_000, doses=(2.0, 0.1), batches=4)
    assert isinstance(result, StudyResult) and result.name == "rounding-dqe"
    rows = result.report["rows"]
    assert [r["dose"] for r in rows] == [0.1, 2.0]
    for r in rows:
        for key in ("abs_loss", "abs_loss_err", "rel_loss", "rel_loss_err", "seed_table"):
            assert isinstance(r[key], float), key
        assert r["seed_table"] == SEED_TABLE[r["dose"]]
        assert r["abs_loss_err"] > 0
    keys = {k for k, _, _ in result.columns}
    assert keys <= set(rows[0])
    # same seed, same numbers
    again = run(seed=3, samples=200_000, doses=(0.1, 2.0), batches=4)
    assert again.report == result.report


def test_run_rejects_bad_settings():
    with pytest.raises(DedkitError):
        run(samples=10)
    with pytest.raises(DedkitError):
        run(samples=100_000, doses=(0.0,))
    with pytest.raises(DedkitError):
        dqe_loss(0.5, 1000, np.random.default_rng(0), batches=1)


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    result = run(samples=100_000, batches=4)
    path = write_study_figure(result, tmp_path / "dqe.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["dqe.png"]


@pytest.mark.slow
def test_default_study_resolves_every_loss():
    # the documented run: losses measured to better than a tenth of their size
    result = run()
    for r in result.report["rows"]:
        assert r["rel_loss_err"] < 0.1 * r["rel_loss"]
        assert (
            abs(r["rel_loss"] - r["expected_rel_loss"])
            < 4 * r["rel_loss_err"] + 0.05 * r["expected_rel_loss"]
        )
        assert r["rel_loss"] < r["seed_table"]

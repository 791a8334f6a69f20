"""Evaluation: CNN, eta and centroid on the same clusters, split by absorption."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from tiny_set import make_tiny_set  # noqa: E402

from dedkit.errors import DedkitError  # noqa: E402
from dedkit.io.training import read_training_set  # noqa: E402
from dedkit.jobs.learn import evaluate_model  # noqa: E402
from dedkit.learn.evaluate import eta_positions  # noqa: E402


def test_report_compares_the_three_methods(tiny_set, tiny_model, tmp_path):
    report = evaluate_model(tiny_set, tiny_model, figure=tmp_path / "res.png")
    d = report.to_dict()
    assert d["n_clusters"] == 300
    assert set(d["rmse_px"]) == {"cnn", "eta", "centroid"}
    columns = read_training_set(tiny_set)
    rx = columns["centroid_x"] - columns["entry_x"]
    assert d["rmse_px"]["centroid"]["x"] == pytest.approx(np.sqrt(np.mean(rx**2)))
    assert d["mean_residual_px"]["centroid"]["x"] == pytest.approx(rx.mean())
    full = columns["deposit_keV"] >= 0.95 * 200.0
    assert d["fully_absorbed"]["n"] == full.sum()
    assert d["backscattered"]["n"] == (~full).sum()
    assert d["fully_absorbed"]["n"] + d["backscattered"]["n"] == 300
    assert d["cnn_to_centroid"]["x"] == pytest.approx(
        d["rmse_px"]["cnn"]["x"] / d["rmse_px"]["centroid"]["x"]
    )
    assert (tmp_path / "res.png").stat().st_size > 1000
    assert "CNN / centroid" in report.text()


def test_eta_is_taken_around_the_maximum():
    # a cluster whose maximum is off the crop centre: eta2 lands between the maximum
    # pixel and its brighter neighbour
    images = np.zeros((200, 15, 15), np.float32)
    rng = np.random.default_rng(0)
    share = rng.uniform(0.05, 0.45, 200)
    images[:, 4, 10] = 30 * (1 - share)
    images[:, 4, 11] = 30 * share
    positions = eta_positions(images)
    assert np.all(positions[:, 0] > 10 - 7.5) and np.all(positions[:, 0] < 12 - 7.5)
    order = np.argsort(share)
    assert np.all(np.diff(positions[order, 0]) >= 0)  # monotonic in the charge sharing


def test_a_set_of_another_energy_is_refused(tiny_model, tmp_path):
    other = make_tiny_set(tmp_path / "e100.h5", n=20, energy_keV=100.0)
    with pytest.raises(DedkitError, match="100 keV"):
        evaluate_model(other, tiny_model)


def test_results_can_be_recorded_on_a_copy_of_the_card(tiny_set, tiny_model, tmp_path):
    from dedkit.jobs.learn import copy_model
    from dedkit.learn.store import load_model

    copy_model(tiny_model, tmp_path / "copy")
    state, card = load_model(tmp_path / "copy.json")
    assert card["weights"] == "copy.npz" and "held_out:tiny.h5" not in card["metrics"]
    report = evaluate_model(tiny_set, tmp_path / "copy.npz", limit=100, record=True)
    again, card = load_model(tmp_path / "copy.json")  # the weights' hash still holds
    recorded = card["metrics"]["held_out:tiny.h5"]
    assert recorded["n_clusters"] == 100 and recorded["limit"] == 100
    assert recorded["rmse_px"] == report.to_dict()["rmse_px"]
    assert all(np.array_equal(state[k], again[k]) for k in state)

"""The 'cnn' localiser: registration without torch, positions, refusals."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from dedkit.errors import DedkitError
from dedkit.records.tables import ClusterTable


def test_importing_hpd_and_the_registration_does_not_import_torch():
    code = (
        "import sys, dedkit.hpd, dedkit.hpd.localize, dedkit.learn, dedkit.jobs.hpd\n"
        "from dedkit.hpd.localize import available_localizers\n"
        "assert 'cnn' in available_localizers()\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_get_localizer_finds_cnn_without_importing_dedkit_learn_first():
    code = (
        "import sys\n"
        "from dedkit.hpd.localize import get_localizer\n"
        "assert 'dedkit.learn' not in sys.modules\n"
        "assert type(get_localizer('cnn', beam_energy_keV=200.0)).__name__ == 'CnnLocalizer'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _table(images, features, x=100, y=50, units="keV"):
    n = len(images)
    return ClusterTable(
        np.arange(n, dtype=np.int64), np.full(n, x, np.int32), np.full(n, y, np.int32),
        images, units=units, features=features,
    )  # fmt: skip


def test_localize_places_the_network_output_on_the_reference_pixel(tiny_set, tiny_model):
    pytest.importorskip("torch")
    import dedkit.learn  # noqa: F401  (registers 'cnn')
    from dedkit.hpd.localize import get_localizer
    from dedkit.learn.data import load_training_arrays

    data = load_training_arrays(tiny_set, 40)
    localizer = get_localizer("cnn", model=tiny_model, beam_energy_keV=200.0)
    offsets = localizer.positions(data.images, data.features)
    events = localizer.localize(_table(data.images, data.features))
    np.testing.assert_allclose(events.x, 100.5 + offsets[:, 0])
    np.testing.assert_allclose(events.y, 50.5 + offsets[:, 1])
    assert events.method == "cnn" and len(events) == 40
    np.testing.assert_allclose(events.energy, data.features[:, 0])
    assert len(localizer.localize(_table(data.images[:0], data.features[:0]))) == 0


def test_data_the_model_was_not_trained_for_are_refused(tiny_set, tiny_model):
    pytest.importorskip("torch")
    from dedkit.learn.data import load_training_arrays
    from dedkit.learn.localizer import CnnLocalizer

    with pytest.raises(DedkitError, match="trained for 200 keV, the data are 300 keV"):
        CnnLocalizer(tiny_model, beam_energy_keV=300.0)
    with pytest.raises(DedkitError, match="sensor thickness of 320 um"):
        CnnLocalizer(tiny_model, sensor={"thickness_um": 450.0})
    with pytest.raises(DedkitError, match="pixel pitch"):
        CnnLocalizer(tiny_model, sensor={"pitch_um": 55.0})
    localizer = CnnLocalizer(tiny_model, beam_energy_keV=200.0, sensor={"pitch_um": 25.0})
    data = load_training_arrays(tiny_set, 5)
    with pytest.raises(DedkitError, match="connected finder"):
        localizer.localize(_table(data.images, data.features, units="ADU"))
    with pytest.raises(DedkitError, match="15 x 15"):
        localizer.localize(_table(data.images[:, 5:10, 5:10], data.features))


def test_the_shipped_model_loads_and_is_small():
    pytest.importorskip("torch")
    from dedkit.io.model_files import model_paths
    from dedkit.learn.localizer import CnnLocalizer
    from dedkit.learn.store import default_model_path

    weights, card_path = model_paths(default_model_path())
    assert weights.stat().st_size < 1_000_000
    localizer = CnnLocalizer(beam_energy_keV=200.0, sensor={"thickness_um": 320.0,
                                                           "pitch_um": 25.0})  # fmt: skip
    card = localizer.card
    assert card["energy_keV"] == 200.0
    assert card["sensor"] == {"thickness_um": 320.0, "pitch_um": 25.0}
    held_out = card["metrics"]["held_out:test200_s2.h5"]["rmse_px"]
    assert held_out["cnn"]["x"] <= 0.5 and held_out["cnn"]["y"] <= 0.5
    # a cluster deposited on one pixel is placed near that pixel's centre
    images = np.zeros((1, 15, 15), np.float32)
    images[0, 7, 7] = 150.0
    features = np.array([[150.0, 1, 1, 1, 150.0, 150.0, 200.0]], np.float32)
    assert np.all(np.abs(localizer.positions(images, features)) < 0.5)


def test_issue_13_item_6_a_crop_the_model_does_not_take_names_the_model(tiny_set, tiny_model):
    pytest.importorskip("torch")
    from dedkit.learn.data import load_training_arrays
    from dedkit.learn.localizer import CnnLocalizer

    localizer = CnnLocalizer(tiny_model, beam_energy_keV=200.0)
    data = load_training_arrays(tiny_set, 5)
    with pytest.raises(DedkitError, match="takes 15 x 15 crops") as error:
        localizer.localize(_table(data.images[:, 5:10, 5:10], data.features))
    assert str(error.value).startswith(f"{tiny_model}: ")

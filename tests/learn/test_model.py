"""The paper's network, its lighter variants, and models stored without pickles."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from dedkit.errors import DedkitError  # noqa: E402
from dedkit.io.model_files import model_paths, save_model  # noqa: E402
from dedkit.learn.model import (  # noqa: E402
    ARCHITECTURES,
    Architecture,
    build_model,
    count_parameters,
    network_from_arrays,
    predict,
    state_arrays,
)
from dedkit.learn.store import load_model, read_card  # noqa: E402


def test_the_paper_network_has_the_published_shape():
    model = build_model("paper")
    convs = [m for m in model.backbone if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 7
    assert all(c.kernel_size == (3, 3) and c.padding == (0, 0) for c in convs)
    assert [c.out_channels for c in convs] == [64] * 7
    relus = [m for m in model.backbone if isinstance(m, torch.nn.ReLU)]
    assert len(relus) == 6  # between every two convolutions
    assert model.backbone(torch.zeros(2, 1, 15, 15)).shape == (2, 64, 1, 1)
    linear, activation = model.features
    assert (linear.in_features, linear.out_features) == (7, 32)
    assert isinstance(activation, torch.nn.Tanh)
    assert (model.head.in_features, model.head.out_features) == (96, 2)
    expected = (64 * 10) + 6 * (64 * 64 * 9 + 64) + (7 * 32 + 32) + (96 * 2 + 2)
    assert count_parameters(model) == expected
    assert model(torch.zeros(3, 15, 15), torch.zeros(3, 7)).shape == (3, 2)


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_every_preset_runs(name):
    model = build_model(name)
    assert model(torch.rand(4, 15, 15), torch.rand(4, 7)).shape == (4, 2)


def test_too_many_convolutions_are_refused():
    with pytest.raises(DedkitError, match="do not fit"):
        build_model(Architecture("custom", (8,) * 8))


def _trained_like(seed=0):
    torch.manual_seed(seed)
    return build_model("c16", feature_mean=np.arange(7.0), feature_std=np.full(7, 2.0)).eval()


def _input(model) -> dict:
    # what 'dedkit learn train' writes on the card
    return {
        "crop": model.arch.crop,
        "image_scale_keV": float(model.image_scale),
        "feature_mean": model.feature_mean.tolist(),
        "feature_std": model.feature_std.tolist(),
    }


def test_save_and_load_give_the_same_predictions(tmp_path):
    model = _trained_like()
    card = {"architecture": model.arch.to_dict(), "input": _input(model), "energy_keV": 200.0}
    weights, card_path = save_model(tmp_path / "m", state_arrays(model), card)
    assert (weights.name, card_path.name) == ("m.npz", "m.json")
    # plain arrays: readable without pickles
    with np.load(weights, allow_pickle=False) as npz:
        assert all(npz[k].dtype == np.float32 for k in npz.files)
    state, loaded_card = load_model(tmp_path / "m.json")
    again = network_from_arrays(Architecture.from_dict(loaded_card["architecture"]), state)
    rng = np.random.default_rng(0)
    images = rng.random((50, 15, 15), dtype=np.float32) * 20
    features = rng.random((50, 7), dtype=np.float32)
    np.testing.assert_array_equal(predict(model, images, features),
                                  predict(again, images, features))  # fmt: skip
    # batching changes nothing beyond rounding
    small_batches = predict(again, images, features, batch_size=7)
    np.testing.assert_allclose(predict(model, images, features), small_batches, atol=1e-5)
    with pytest.raises(DedkitError, match="exists"):
        save_model(tmp_path / "m", state_arrays(model), card)


def test_a_tampered_or_foreign_model_is_refused(tmp_path):
    model = _trained_like()
    card = {"architecture": model.arch.to_dict(), "input": _input(model), "energy_keV": 200.0}
    weights, card_path = save_model(tmp_path / "m", state_arrays(model), card)
    data = bytearray(weights.read_bytes())
    data[-30] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(DedkitError, match="do not match"):
        load_model(weights)
    card_path.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(DedkitError, match="not a dedkit"):
        read_card(card_path)
    assert model_paths(tmp_path / "x.npz") == (tmp_path / "x.npz", tmp_path / "x.json")


def test_arrays_that_do_not_fit_the_architecture_are_refused():
    state = state_arrays(_trained_like())
    with pytest.raises(DedkitError, match="do not fit"):
        network_from_arrays(
            ARCHITECTURES["c32"], {k: v for k, v in state.items() if "head" not in k}
        )
    with pytest.raises(DedkitError, match="needs"):
        network_from_arrays(ARCHITECTURES["c32"], state)
    # issue 13 item 6: the weights file is named
    with pytest.raises(DedkitError, match=r"^w\.npz: model tensor backbone\.0\.weight is"):
        network_from_arrays(ARCHITECTURES["c32"], state, path="w.npz")

"""Model files that must not be trusted: a card without the weights' hash, non-finite
weights, damaged cards and weights (issue 13 items 3 and 11), and the installed package,
which dedkit never writes (issue 13 item 4)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

pytest.importorskip("torch")

from tiny_set import huge_member_npz  # noqa: E402

from dedkit.errors import DedkitError  # noqa: E402
from dedkit.io.atomic import check_outside_package  # noqa: E402
from dedkit.io.model_files import save_model  # noqa: E402
from dedkit.jobs.learn import record_metrics  # noqa: E402
from dedkit.learn.model import build_model, state_arrays  # noqa: E402
from dedkit.learn.store import default_model_path, load_model, read_card  # noqa: E402

#: the input normalisation of a freshly built network, as 'dedkit learn train' writes it
INPUT = {"crop": 15, "image_scale_keV": 10.0, "feature_mean": [0.0] * 7, "feature_std": [1.0] * 7}


@pytest.fixture()
def model(tmp_path):
    """A freshly initialised c16 saved as ``tmp_path/m`` -> (weights, card) paths."""
    network = build_model("c16")
    card = {"architecture": network.arch.to_dict(), "input": INPUT, "energy_keV": 200.0}
    return save_model(tmp_path / "m", state_arrays(network), card)


def _edit_card(card_path, **changes):
    card = json.loads(card_path.read_text())
    for key, value in changes.items():
        if value is ...:
            card.pop(key)
        else:
            card[key] = value
    card_path.write_text(json.dumps(card))


def _replace_weights(weights, card_path, arrays=None, raw: bytes | None = None):
    """New weights with a card hash that matches them (what a careless edit would do)."""
    if raw is None:
        with weights.open("wb") as f:
            np.savez(f, **arrays)
        raw = weights.read_bytes()
    weights.write_bytes(raw)
    _edit_card(card_path, weights_sha256=hashlib.sha256(raw).hexdigest())


def test_issue_13_item_3_a_card_without_the_weights_hash_is_refused(model):
    weights, card_path = model
    nan_state = {k: np.full_like(v, np.nan) for k, v in np.load(weights).items()}
    with weights.open("wb") as f:
        np.savez(f, **nan_state)
    _edit_card(card_path, weights_sha256=...)
    with pytest.raises(DedkitError, match="no weights_sha256"):
        load_model(card_path)
    with pytest.raises(DedkitError, match="no weights_sha256"):
        read_card(card_path)
    _edit_card(card_path, weights_sha256="")
    with pytest.raises(DedkitError, match="is not a SHA-256"):
        load_model(card_path)


def test_issue_13_item_3_weights_must_be_finite(model):
    weights, card_path = model
    state = dict(np.load(weights))
    for bad in (np.nan, np.inf, -np.inf):
        changed = {**state, "head.bias": np.array([0.0, bad], np.float32)}
        _replace_weights(weights, card_path, changed)
        with pytest.raises(DedkitError, match=r"head.bias holds 1 NaN or infinite"):
            load_model(card_path)
    _replace_weights(weights, card_path, {**state, "head.bias": np.array(["a", "b"])})
    with pytest.raises(DedkitError, match="not real numbers"):
        load_model(card_path)
    # and none are written
    with pytest.raises(DedkitError, match="NaN or infinite"):
        save_model(weights.with_name("n"), {"w": np.array([np.nan])}, {})
    assert not weights.with_name("n.npz").exists()


@pytest.mark.parametrize(
    "raw",
    [b"", b"garbage" * 20, b"PK\x03\x04" + b"\x00" * 60, "truncated"],
    ids=["empty", "not-a-zip", "zip-header-only", "truncated"],
)
def test_issue_13_item_11_a_corrupt_npz_is_one_clear_error(model, raw):
    weights, card_path = model
    if raw == "truncated":
        raw = weights.read_bytes()[:-100]
    _replace_weights(weights, card_path, raw=raw)
    with pytest.raises(DedkitError, match="unreadable model weights"):
        load_model(card_path)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"format_version": "two"}, "format_version 'two' is not a version number"),
        ({"format_version": None}, "is not a version number"),
        ({"format_version": 99}, "newer than this dedkit"),
        ({"input": "nonsense"}, "input must be an object"),
        ({"input": {**INPUT, "crop": "x"}}, "input crop 'x'"),
        ({"input": {**INPUT, "feature_mean": ["a"]}}, "feature_mean must be a list"),
        # issue 13 item 6: the fields not checked before
        ({"input": {}}, "input image_scale_keV None is not a positive number"),
        ({"input": {**INPUT, "feature_mean": [1.0]}}, "feature_mean has 1 values, not one"),
        ({"input": {**INPUT, "feature_std": [0] * 7}}, "feature_std must be positive"),
        ({"input": {**INPUT, "image_scale_keV": "ten"}}, "image_scale_keV 'ten' is not a"),
        ({"input": {**INPUT, "crop": 13}}, "input crop 13 differs from the architecture's 15"),
        (
            {"architecture": {"name": "banana", "channels": [16] * 7}},
            "architecture name 'banana' is not one of paper",
        ),
        ({"architecture": {"name": "c16", "channels": [8] * 7}}, "is not the preset"),
        ({"architecture": "c16"}, "architecture must be an object"),
        ({"architecture": {"name": "custom", "channels": [-3] * 7}}, "channels must be a list"),
        ({"architecture": {"name": "custom", "channels": [16] * 9}}, "do not fit a 15 x 15"),
        ({"energy_keV": "200"}, "energy_keV '200' is not a positive number"),
        ({"sensor": [320]}, "sensor must be an object"),
        ({"metrics": []}, "metrics must be an object"),
    ],
)
def test_issue_13_item_11_a_damaged_card_is_one_clear_error(model, changes, message):
    _, card_path = model
    _edit_card(card_path, **changes)
    with pytest.raises(DedkitError, match=message) as error:
        load_model(card_path)
    assert "\n" not in str(error.value) and str(card_path) in str(error.value)


@pytest.mark.parametrize(
    "name, shape, message",
    [
        ("backbone.0.weight", (131072, 131072), "declares 131072 x 131072 float32"),
        ("backbone.0.weight", (16, 1, 3, 3), r"declares 16 x 1 x 3 x 3 float32 \(576 bytes\) but"),
        ("head.bias", (3,), "declares 3 float32"),
    ],
)
def test_issue_13_item_1_member_headers_are_checked_before_loading(model, name, shape, message):
    weights, card_path = model
    _replace_weights(weights, card_path, raw=huge_member_npz(weights, name, shape))
    with pytest.raises(DedkitError, match=message) as error:
        load_model(card_path)
    assert str(error.value).startswith(f"{weights}: model tensor {name}")


def test_issue_13_item_1_members_of_another_shape_are_refused(model):
    weights, card_path = model
    state = dict(np.load(weights))
    for changed, message in (
        (
            {**state, "head.bias": np.zeros(3, np.float32)},
            r"head.bias is \(3,\), the architecture needs \(2,\)",
        ),
        ({**state, "extra": np.zeros(2, np.float32)}, "extra is not a tensor of the card's"),
        ({k: v for k, v in state.items() if k != "head.bias"}, "tensors missing: head.bias"),
        ({**state, "head.bias": np.zeros(2, np.complex64)}, "not real numbers"),
    ):
        _replace_weights(weights, card_path, changed)
        with pytest.raises(DedkitError, match=message):
            load_model(card_path)
    # a scalar stored as one value still loads
    _replace_weights(weights, card_path, {**state, "image_scale": np.array([10.0], np.float32)})
    assert load_model(card_path)[0]["image_scale"].shape == (1,)


def test_issue_13_item_6_an_uppercase_weights_hash_is_the_same_hash(model):
    weights, card_path = model
    sha = json.loads(card_path.read_text())["weights_sha256"]
    _edit_card(card_path, weights_sha256=sha.upper())
    state, card = load_model(card_path)
    assert set(state) and card["weights_sha256"] == sha.upper()
    _edit_card(card_path, weights_sha256=("0" * 64).upper())
    with pytest.raises(DedkitError, match="do not match their card"):
        load_model(card_path)


def test_issue_13_item_4_nothing_is_written_inside_the_package(model, tmp_path):
    shipped = default_model_path()
    before = shipped.read_bytes()
    with pytest.raises(DedkitError, match="inside the installed dedkit package"):
        record_metrics(shipped, "mine", {"rmse": 1.0})
    weights, _ = model
    state = dict(np.load(weights))
    with pytest.raises(DedkitError, match="inside the installed dedkit package"):
        save_model(shipped.with_name("mine"), state, {}, force=True)
    with pytest.raises(DedkitError, match="read-only"):
        check_outside_package(shipped.parents[2] / "figure.png")
    assert shipped.read_bytes() == before
    assert not shipped.with_name("mine.npz").exists()
    assert check_outside_package(tmp_path / "x.json") == tmp_path / "x.json"
    # the shipped model itself passes every check
    state, card = load_model(shipped)
    assert card["architecture"]["name"] == "c16"

"""Trusted models: what a model card may say about the network, and the shipped model.

The files themselves (the weights ``.npz`` and the JSON card, their hash and headers,
writing and reading) are :mod:`dedkit.io.model_files`; here a card read through it is
checked against what dedkit knows of networks, and a model is loaded only once both agree.

The card's fields that dedkit uses (version, architecture, input, energy, sensor,
metrics) are checked when it is read, so a damaged or hand-edited card is one clear
error, not a failure deep inside the network: the architecture is a preset of
:data:`~dedkit.learn.architectures.ARCHITECTURES` (with its shape) or ``custom``;
``input`` holds what ``dedkit learn train`` writes (the crop, equal to the
architecture's, a positive ``image_scale_keV``, 7 finite ``feature_mean`` and 7 positive
``feature_std``). The weights' members are checked from their ``.npy`` headers against
the architecture before any is loaded (:func:`dedkit.io.model_files.check_npz_members`).

This module writes no files: a model is written by :func:`dedkit.io.model_files.save_model`
(``dedkit learn train``), results recorded on a card by
:func:`dedkit.jobs.learn.record_metrics`. No model, card or record is written inside the
installed dedkit package (where the shipped model lives).
"""

from __future__ import annotations

import math
from pathlib import Path

from dedkit.errors import DedkitError
from dedkit.io.model_files import model_paths, read_card_file, read_weights
from dedkit.learn.architectures import (
    ARCHITECTURES,
    CROP,
    N_FEATURES,
    Architecture,
    tensor_shapes,
)

__all__ = ["DEFAULT_MODEL", "check_card", "default_model_path", "load_model", "read_card"]

_MODELS = Path(__file__).with_name("models")
#: Widest layer a card may ask for (the paper's is 64)
_MAX_WIDTH = 1024
#: The shipped model (200 keV, 320 um, 25 um)
DEFAULT_MODEL = "moench200"


def default_model_path() -> Path:
    """The model shipped with dedkit."""
    return _MODELS / f"{DEFAULT_MODEL}.json"


def read_card(path) -> dict:
    """The JSON card of a model, every field dedkit uses checked.

    The envelope (format, version, the weights' hash) by
    :func:`dedkit.io.model_files.read_card_file`, the rest by :func:`check_card`.

    Examples
    --------
    >>> read_card(default_model_path())["architecture"]["name"]
    'c16'
    """
    card = read_card_file(path)
    check_card(card, model_paths(path)[1])
    return card


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_card(card: dict, card_path: Path) -> None:
    """Refuse a card whose fields about the network (architecture, input, energy, sensor,
    metrics) are missing or of the wrong kind: one line naming ``card_path``."""

    def bad(message: str):
        return DedkitError(f"bad model card: {message}", path=card_path)

    _check_architecture(card.get("architecture"), bad)
    _check_input(card.get("input"), card["architecture"], bad)
    energy = card.get("energy_keV")
    if energy is not None and not (_is_number(energy) and energy > 0):
        raise bad(f"energy_keV {energy!r} is not a positive number")
    sensor = card.get("sensor")
    if sensor is not None:
        if not isinstance(sensor, dict):
            raise bad(f"sensor must be an object (thickness_um, pitch_um), not {sensor!r}")
        for key in ("thickness_um", "pitch_um"):
            value = sensor.get(key)
            if value is not None and not (_is_number(value) and value > 0):
                raise bad(f"sensor {key} {value!r} is not a positive number")
    if not isinstance(card.get("metrics", {}), dict):
        raise bad("metrics must be an object")


def _check_input(model_input, arch: dict, bad) -> None:
    # what 'dedkit learn train' writes and the network is used with: the crop side, the
    # image scale and the features' normalisation (7 means, 7 positive sds)
    if not isinstance(model_input, dict):
        raise bad(
            "input must be an object (crop, image_scale_keV, feature_mean, feature_std), "
            f"not {model_input!r}"
        )
    arch_crop = arch.get("crop", CROP)
    crop = model_input.get("crop", arch_crop)
    if not _is_count(crop, 3):
        raise bad(f"input crop {crop!r} is not a crop side (an integer >= 3)")
    if crop != arch_crop:
        raise bad(f"input crop {crop} differs from the architecture's {arch_crop}")
    scale = model_input.get("image_scale_keV")
    if not (_is_number(scale) and scale > 0):
        raise bad(f"input image_scale_keV {scale!r} is not a positive number")
    for key in ("feature_mean", "feature_std"):
        values = model_input.get(key)
        if not (isinstance(values, list) and all(_is_number(v) for v in values)):
            raise bad(f"input {key} must be a list of finite numbers, not {values!r}")
        if len(values) != N_FEATURES:
            raise bad(f"input {key} has {len(values)} values, not one per feature ({N_FEATURES})")
    if not all(v > 0 for v in model_input["feature_std"]):
        raise bad("input feature_std must be positive (a feature is divided by it)")


def _is_count(value, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _check_architecture(arch, bad) -> None:
    # without torch (this module must not import it): the shape rules of
    # dedkit.learn.model.Architecture, and a bound on the widths so that a card cannot
    # make dedkit build a network of any size
    if not isinstance(arch, dict):
        raise bad("architecture must be an object (name, channels, feature_width, crop)")
    name = arch.get("name")
    if name != "custom" and name not in ARCHITECTURES:
        raise bad(f"architecture name {name!r} is not one of {', '.join(ARCHITECTURES)} or custom")
    channels = arch.get("channels")
    crop = arch.get("crop", CROP)
    if not _is_count(crop, 3):
        raise bad(f"architecture crop {crop!r} is not an integer >= 3")
    if not (
        isinstance(channels, list)
        and channels
        and all(_is_count(c, 1) and c <= _MAX_WIDTH for c in channels)
    ):
        raise bad(f"architecture channels must be a list of integers 1-{_MAX_WIDTH}")
    if crop - 2 * len(channels) < 1:
        raise bad(f"{len(channels)} 3 x 3 convolutions do not fit a {crop} x {crop} crop")
    width = arch.get("feature_width", 32)
    if not (_is_count(width, 0) and width <= _MAX_WIDTH):
        raise bad(f"architecture feature_width {width!r} is not an integer 0-{_MAX_WIDTH}")
    preset = ARCHITECTURES.get(name)
    if preset is not None and (tuple(channels), width, crop) != (
        preset.channels,
        preset.feature_width,
        preset.crop,
    ):
        raise bad(f"architecture {name!r} is not the preset of that name (use name 'custom')")


def load_model(path) -> tuple[dict, dict]:
    """(arrays, card) of a model; the card is checked (:func:`read_card`), the weights
    against the card's hash, their headers against its architecture, then their values.

    Returns
    -------
    state : dict of str -> ndarray
    card : dict
    """
    card = read_card(path)
    shapes = tensor_shapes(Architecture.from_dict(card["architecture"]))
    return read_weights(path, card, shapes), card

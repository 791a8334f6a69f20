"""Trained models on disk: the weights as plain arrays (``.npz``, read with
``allow_pickle=False``) and a JSON card beside them (``.json``), never a pickle.

A model ``M`` is the pair ``M.npz`` + ``M.json`` (either path may be given). The card
holds everything needed to rebuild and trust the network: its architecture, the input
normalisation, the beam energy and sensor it was trained for, the training data's
SHA-256, its metrics, the command that produced it and the weights' SHA-256.

**Trust.** A card must carry the SHA-256 of its weights (``weights_sha256``): a card
without one is refused, not trusted (removing the hash must not switch the check off),
and the weights must be finite numbers. The card's fields that dedkit uses (version,
architecture, input, energy, sensor, metrics) are checked when it is read, so a damaged
or hand-edited card is one clear error, not a failure deep inside the network: the
architecture is a preset of :data:`~dedkit.learn.architectures.ARCHITECTURES` (with its
shape) or ``custom``; ``input`` holds what ``dedkit learn train`` writes (the crop, equal
to the architecture's, a positive ``image_scale_keV``, 7 finite ``feature_mean`` and 7
positive ``feature_std``); the hash is 64 hexadecimal digits in either case. The
weights' members are checked from their ``.npy`` headers against the architecture
(names, shapes, real dtypes, the bytes they hold) before any is loaded
(:func:`check_npz_members`), so a header declaring 131072 x 131072 allocates nothing.

**The installed package is read-only to dedkit.** No model, card or record is written
inside the dedkit package folder (where the shipped model lives): copy a model out of it
first (:func:`copy_model`).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import zipfile
import zlib
from pathlib import Path

import numpy as np

from dedkit.errors import DedkitError, one_line
from dedkit.io.atomic import atomic_output, check_outputs, check_outside_package
from dedkit.io.limits import read_npy_stream_header
from dedkit.learn.architectures import (
    ARCHITECTURES,
    CROP,
    N_FEATURES,
    Architecture,
    tensor_shapes,
)

__all__ = [
    "CARD_FORMAT",
    "copy_model",
    "check_outside_package",
    "default_model_path",
    "load_model",
    "model_paths",
    "read_card",
    "record_metrics",
    "save_model",
]

CARD_FORMAT = "dedkit-cnn-localizer"
CARD_VERSION = 1
_MODELS = Path(__file__).with_name("models")
#: either case: a hash is the same number whichever case its hex digits are written in
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
#: Widest layer a card may ask for (the paper's is 64)
_MAX_WIDTH = 1024
#: The shipped model (200 keV, 320 um, 25 um)
DEFAULT_MODEL = "moench200"


def default_model_path() -> Path:
    """The model shipped with dedkit."""
    return _MODELS / f"{DEFAULT_MODEL}.json"


def model_paths(path) -> tuple[Path, Path]:
    """(weights .npz, card .json) of a model given by either file or the common stem."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix.lower() in (".npz", ".json") else path
    return stem.with_name(stem.name + ".npz"), stem.with_name(stem.name + ".json")


def _write_atomic(path: Path, write) -> None:
    # a temporary renamed into place; a full disk is one line naming the file
    with atomic_output(path) as temporary:
        write(temporary)


def save_model(path, state: dict, card: dict, *, force: bool = False) -> tuple[Path, Path]:
    """Write weights and card.

    Parameters
    ----------
    path : path-like
        ``M``, ``M.npz`` or ``M.json``.
    state : dict of str -> ndarray
        The network's tensors (``state_dict`` converted to numpy).
    card : dict
        JSON-serialisable description; ``format``, ``weights`` and ``weights_sha256``
        are added.
    force : bool

    Returns
    -------
    weights, card : Path
    """
    weights_path, card_path = model_paths(path)
    check_outputs([weights_path, card_path], force=force)  # never inside the package
    arrays = {name: np.array(value, order="C") for name, value in state.items()}
    _check_weights(arrays, weights_path)
    _write_atomic(weights_path, lambda p: np.savez(p.open("wb"), **arrays))
    card = {
        "format": CARD_FORMAT,
        "format_version": CARD_VERSION,
        **card,
        "weights": weights_path.name,
        "weights_sha256": hashlib.sha256(weights_path.read_bytes()).hexdigest(),
    }
    text = json.dumps(card, indent=1, default=_json_default) + "\n"
    _write_atomic(card_path, lambda p: p.write_text(text, encoding="utf-8"))
    return weights_path, card_path


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def read_card(path) -> dict:
    """The JSON card of a model."""
    _, card_path = model_paths(path)
    if not card_path.is_file():
        raise DedkitError("model card not found", path=card_path)
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DedkitError(f"unreadable model card ({one_line(error)})", path=card_path) from None
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise DedkitError("not a dedkit CNN model card", path=card_path)
    _check_card(card, card_path)
    return card


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_card(card: dict, card_path: Path) -> None:
    """Refuse a card whose fields dedkit uses are missing or of the wrong kind."""

    def bad(message: str):
        return DedkitError(f"bad model card: {message}", path=card_path)

    version = card.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise bad(f"format_version {version!r} is not a version number (1, 2, ...)")
    if version > CARD_VERSION:
        raise DedkitError(
            f"model card version {version} is newer than this dedkit's ({CARD_VERSION})",
            path=card_path,
        )
    sha = card.get("weights_sha256")
    if sha is None:
        raise bad(
            "no weights_sha256 (the SHA-256 of the weights): a card without it is not "
            "trusted; write models with 'dedkit learn train'"
        )
    if not isinstance(sha, str) or not _SHA256.match(sha):
        raise bad(f"weights_sha256 {sha!r} is not a SHA-256 (64 hexadecimal digits)")
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


def _check_weights(state: dict, weights_path: Path) -> None:
    """Weights are real numbers and finite (NaN or inf weights give NaN positions)."""
    for name, value in state.items():
        value = np.asarray(value)
        if value.dtype.kind not in "fiu":
            raise DedkitError(
                f"model tensor {name} is not real numbers (dtype {value.dtype})",
                path=weights_path,
            )
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            bad = int(np.size(value) - np.count_nonzero(np.isfinite(value)))
            raise DedkitError(
                f"model tensor {name} holds {bad} NaN or infinite values", path=weights_path
            )


def _fits(shape: tuple, expected: tuple) -> bool:
    # a scalar may be stored as one value (np.ascontiguousarray makes () into (1,))
    return shape == expected or (expected == () and shape == (1,))


def check_npz_members(path, shapes: dict, *, allowed_shapes=None, what="model") -> None:
    """Check every member of an ``.npz`` from its header alone, before any is loaded.

    Each member must be a ``.npy`` of real numbers (at most 8 bytes each) holding the
    bytes its header declares, and have the shape ``shapes`` gives for its name (every
    name there must be present); a member not in ``shapes`` is allowed only when its
    shape is in ``allowed_shapes``. So a weights file cannot make dedkit allocate more
    than its card's architecture needs.

    Parameters
    ----------
    path : path-like
    shapes : dict of str -> tuple
        Name (without ``.npy``) -> required shape.
    allowed_shapes : set of tuple, optional
        Shapes a member not named in ``shapes`` may have (None: no other member).
    what : str
        How the error names a member ("model tensor x").

    Raises
    ------
    DedkitError
        One line naming ``path`` and the member.
    """
    path = Path(path)
    found = set()
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                name = info.filename.removesuffix(".npy")
                label = f"{what} tensor {name}"
                expected = shapes.get(name)
                if expected is None and allowed_shapes is None:
                    raise DedkitError(
                        f"{label} is not a tensor of the card's architecture", path=path
                    )
                with archive.open(info) as member:
                    shape, dtype, _ = read_npy_stream_header(
                        member, info.file_size, path=path, what=label
                    )
                if dtype.kind not in "fiu" or dtype.itemsize > 8:
                    raise DedkitError(f"{label} is not real numbers (dtype {dtype})", path=path)
                if expected is not None and not _fits(shape, expected):
                    raise DedkitError(
                        f"{label} is {shape}, the architecture needs {expected}", path=path
                    )
                if expected is None and not any(_fits(shape, s) for s in allowed_shapes):
                    raise DedkitError(
                        f"{label} is {shape}, not the shape of a tensor of the network",
                        path=path,
                    )
                found.add(name)
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError) as error:
        raise DedkitError(
            f"unreadable {what} weights, not a numpy .npz ({one_line(error)})", path=path
        ) from None
    missing = sorted(set(shapes) - found)
    if missing:
        raise DedkitError(
            f"{what} tensors missing: {', '.join(missing[:4])}"
            + (", ..." if len(missing) > 4 else ""),
            path=path,
        )


def load_model(path) -> tuple[dict, dict]:
    """(arrays, card) of a model; the weights are checked against the card's hash.

    Returns
    -------
    state : dict of str -> ndarray
    card : dict
    """
    card = read_card(path)
    weights_path, _ = model_paths(path)
    if not weights_path.is_file():
        raise DedkitError("model weights not found", path=weights_path)
    data = weights_path.read_bytes()
    if hashlib.sha256(data).hexdigest() != card["weights_sha256"].lower():
        raise DedkitError("model weights do not match their card (hash differs)", path=weights_path)
    # the members' headers first: a header declaring 131072 x 131072 is refused here,
    # before numpy allocates what it declares
    check_npz_members(weights_path, tensor_shapes(Architecture.from_dict(card["architecture"])))
    try:
        with np.load(weights_path, allow_pickle=False) as npz:
            state = {name: npz[name] for name in npz.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as error:
        # a damaged zip, a member that is not .npy, pickled data
        raise DedkitError(
            f"unreadable model weights, not a numpy .npz ({one_line(error)})", path=weights_path
        ) from None
    _check_weights(state, weights_path)
    return state, card


def copy_model(source, destination, *, force: bool = False) -> tuple[Path, Path]:
    """Copy a model under another name (the card's ``weights`` entry follows)."""
    state, card = load_model(source)
    card = {k: v for k, v in card.items() if k not in ("format", "format_version", "weights",
                                                       "weights_sha256")}  # fmt: skip
    return save_model(destination, state, card, force=force)


def record_metrics(path, name: str, metrics: dict) -> Path:
    """Add measured ``metrics`` to a model card under ``metrics[name]`` (weights untouched).

    Refused for a card inside the installed dedkit package (the shipped model).
    """
    _, card_path = model_paths(path)
    check_outside_package(card_path)
    card = read_card(path)
    card.setdefault("metrics", {})[name] = metrics
    text = json.dumps(card, indent=1, default=_json_default) + "\n"
    _write_atomic(card_path, lambda p: p.write_text(text, encoding="utf-8"))
    return card_path

"""Trained models on disk: the weights as plain arrays (``.npz``, read with
``allow_pickle=False``) and a JSON card beside them (``.json``), never a pickle.

A model ``M`` is the pair ``M.npz`` + ``M.json`` (either path may be given). The card
holds everything needed to rebuild and trust the network: its architecture, the input
normalisation, the beam energy and sensor it was trained for, the training data's
SHA-256, its metrics, the command that produced it and the weights' SHA-256.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dedkit.errors import DedkitError, one_line
from dedkit.io.atomic import atomic_output, check_outputs

__all__ = [
    "CARD_FORMAT",
    "copy_model",
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
    check_outputs([weights_path, card_path], force=force)
    arrays = {name: np.array(value, order="C") for name, value in state.items()}
    for name, value in arrays.items():
        if value.dtype == object:
            raise DedkitError(f"model tensor {name} is not numeric")
    _write_atomic(weights_path, lambda p: np.savez(p.open("wb"), **arrays))
    import hashlib

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
    if card.get("format_version", 0) > CARD_VERSION:
        raise DedkitError(
            f"model card version {card.get('format_version')} is newer than this dedkit's",
            path=card_path,
        )
    return card


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
    import hashlib

    data = weights_path.read_bytes()
    if card.get("weights_sha256") and hashlib.sha256(data).hexdigest() != card["weights_sha256"]:
        raise DedkitError("model weights do not match their card (hash differs)", path=weights_path)
    try:
        with np.load(weights_path, allow_pickle=False) as npz:
            state = {name: npz[name] for name in npz.files}
    except (OSError, ValueError) as error:
        raise DedkitError(
            f"unreadable model weights ({one_line(error)})", path=weights_path
        ) from None
    return state, card


def copy_model(source, destination, *, force: bool = False) -> tuple[Path, Path]:
    """Copy a model under another name (the card's ``weights`` entry follows)."""
    state, card = load_model(source)
    card = {k: v for k, v in card.items() if k not in ("format", "format_version", "weights",
                                                       "weights_sha256")}  # fmt: skip
    return save_model(destination, state, card, force=force)


def record_metrics(path, name: str, metrics: dict) -> Path:
    """Add measured ``metrics`` to a model card under ``metrics[name]`` (weights untouched)."""
    card = read_card(path)
    card.setdefault("metrics", {})[name] = metrics
    _, card_path = model_paths(path)
    text = json.dumps(card, indent=1, default=_json_default) + "\n"
    _write_atomic(card_path, lambda p: p.write_text(text, encoding="utf-8"))
    return card_path

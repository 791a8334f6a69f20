"""The CNN model's files: the weights as plain arrays (``.npz``, read with
``allow_pickle=False``) and a JSON card beside them (``.json``), never a pickle.

A model ``M`` is the pair ``M.npz`` + ``M.json`` (either path may be given). The card
holds everything needed to rebuild and trust the network: its architecture, the input
normalisation, the beam energy and sensor it was trained for, the training data's
SHA-256, its metrics, the command that produced it and the weights' SHA-256.

This module is the file format: writing a model (:func:`save_model`, :func:`write_card`),
reading its card (:func:`read_card_file`: the JSON, its format, version and hash) and its
weights (:func:`read_weights`: the hash, every member's header, then the values), on
plain numpy arrays and dicts (no torch). What a card says about the network (its
architecture, input, energy and sensor) is checked by :func:`dedkit.learn.store.read_card`,
which reads cards through here.

**Trust.** A card must carry the SHA-256 of its weights (``weights_sha256``): a card
without one is refused, not trusted (removing the hash must not switch the check off),
and the weights must be finite numbers; the hash is 64 hexadecimal digits in either case.
The weights' members are checked from their ``.npy`` headers against the shapes the
card's architecture gives (names, shapes, real dtypes, the bytes they hold) before any is
loaded (:func:`check_npz_members`), so a header declaring 131072 x 131072 allocates
nothing.

**The installed package is read-only to dedkit.** No model, card or record is written
inside the dedkit package folder (where the shipped model lives): copy a model out of it
first (:func:`dedkit.jobs.learn.copy_model`).
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
import zlib
from pathlib import Path

import numpy as np

from dedkit.errors import DedkitError, one_line
from dedkit.io.atomic import check_outputs, write_atomic
from dedkit.io.limits import read_npy_stream_header
from dedkit.io.npz import write_npz

__all__ = [
    "CARD_FORMAT",
    "CARD_VERSION",
    "check_npz_members",
    "model_paths",
    "read_card_file",
    "read_weights",
    "save_model",
    "write_card",
]

CARD_FORMAT = "dedkit-cnn-localizer"
CARD_VERSION = 1
#: either case: a hash is the same number whichever case its hex digits are written in
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


def model_paths(path) -> tuple[Path, Path]:
    """(weights .npz, card .json) of a model given by either file or the common stem."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix.lower() in (".npz", ".json") else path
    return stem.with_name(stem.name + ".npz"), stem.with_name(stem.name + ".json")


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
    write_npz(weights_path, arrays)
    card = {
        "format": CARD_FORMAT,
        "format_version": CARD_VERSION,
        **card,
        "weights": weights_path.name,
        "weights_sha256": hashlib.sha256(weights_path.read_bytes()).hexdigest(),
    }
    write_atomic(card_path, _card_text(card))
    return weights_path, card_path


def write_card(path, card: dict) -> Path:
    """Replace a model's card with ``card`` (its weights untouched), as :func:`save_model`
    writes cards. Whether the card may be written (not inside the installed package) is
    the caller's check (:func:`dedkit.io.atomic.check_outside_package`).

    Returns
    -------
    Path
        The card's path.
    """
    _, card_path = model_paths(path)
    write_atomic(card_path, _card_text(card))
    return card_path


def _card_text(card: dict) -> str:
    return json.dumps(card, indent=1, default=_json_default) + "\n"


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def read_card_file(path) -> dict:
    """The JSON card of a model, its envelope checked: the format, the version and the
    weights' hash (64 hexadecimal digits). What it says about the network is checked by
    :func:`dedkit.learn.store.read_card`.

    Raises
    ------
    DedkitError
        One line naming the card.
    """
    _, card_path = model_paths(path)
    if not card_path.is_file():
        raise DedkitError("model card not found", path=card_path)
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DedkitError(f"unreadable model card ({one_line(error)})", path=card_path) from None
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise DedkitError("not a dedkit CNN model card", path=card_path)
    _check_envelope(card, card_path)
    return card


def _check_envelope(card: dict, card_path: Path) -> None:
    """Refuse a card of an unknown version or without a well-formed weights hash."""

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


def read_weights(path, card: dict, shapes: dict) -> dict:
    """The weights of a model, checked against its card's hash, their headers against
    ``shapes`` before anything is loaded, then their values (real and finite).

    Parameters
    ----------
    path : path-like
        ``M``, ``M.npz`` or ``M.json``.
    card : dict
        The model's card (:func:`read_card_file`), for its ``weights_sha256``.
    shapes : dict of str -> tuple
        Name -> shape of every tensor of the card's architecture
        (:func:`dedkit.learn.architectures.tensor_shapes`).

    Returns
    -------
    dict of str -> ndarray

    Examples
    --------
    >>> _ = save_model("m", {"w": np.ones(2, np.float32)}, {"note": "example"})
    >>> card = read_card_file("m.json")
    >>> card["weights"], card["note"]
    ('m.npz', 'example')
    >>> read_weights("m", card, {"w": (2,)})["w"]
    array([1., 1.], dtype=float32)
    """
    weights_path, _ = model_paths(path)
    if not weights_path.is_file():
        raise DedkitError("model weights not found", path=weights_path)
    data = weights_path.read_bytes()
    if hashlib.sha256(data).hexdigest() != card["weights_sha256"].lower():
        raise DedkitError("model weights do not match their card (hash differs)", path=weights_path)
    # the members' headers first: a header declaring 131072 x 131072 is refused here,
    # before numpy allocates what it declares
    check_npz_members(weights_path, shapes)
    try:
        with np.load(weights_path, allow_pickle=False) as npz:
            state = {name: npz[name] for name in npz.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as error:
        # a damaged zip, a member that is not .npy, pickled data
        raise DedkitError(
            f"unreadable model weights, not a numpy .npz ({one_line(error)})", path=weights_path
        ) from None
    _check_weights(state, weights_path)
    return state

"""Training checkpoints on disk: a folder beside the model, ``.NAME.ckpt``, holding the
last finished epoch's ``state.json`` (settings, epoch, optimiser groups, loss history)
and ``checkpoint.npz`` (the network's and the optimiser's arrays, plain numpy).

Both files are written through :func:`dedkit.io.atomic.atomic_output` (a temporary
renamed into place, removed on any failure; a full disk is one line naming the file) and
both are written in full before either is renamed, ``state.json`` last, so a failure
while writing leaves the previous epoch's checkpoint whole. Before a resumed run uses a
checkpoint, every field of its ``state.json`` is checked (settings, epoch, optimiser
groups, one loss-history entry of finite numbers per finished epoch) and its arrays'
headers against the network, then their values (real and finite): a damaged or foreign
checkpoint is one line.

:class:`CheckpointFolder` is what :func:`dedkit.learn.train.fit_model` is given to save
and resume through (it writes no files itself); :func:`dedkit.jobs.learn.train_model`
makes it.
"""

from __future__ import annotations

import contextlib
import json
import math
import zipfile
import zlib
from pathlib import Path

import numpy as np

from dedkit.errors import DedkitError, one_line
from dedkit.io.atomic import atomic_output, remove_owned_folder, writing
from dedkit.io.model_files import check_npz_members, model_paths

__all__ = [
    "CHECKPOINT_ENTRIES",
    "HISTORY_FIELDS",
    "CheckpointFolder",
    "checkpoint_folder",
    "read_checkpoint",
    "read_checkpoint_arrays",
    "read_checkpoint_state",
    "remove_incomplete_checkpoint",
    "write_checkpoint",
]

#: what a checkpoint folder may hold (anything else and --force refuses to remove it)
CHECKPOINT_ENTRIES = r"checkpoint\.npz|state\.json|\.(checkpoint\.npz|state\.json)\.part-\d+"


def checkpoint_folder(output) -> Path:
    """Where the checkpoints of a run writing ``output`` live.

    Examples
    --------
    >>> checkpoint_folder("models/m.json").as_posix()
    'models/.m.ckpt'
    """
    weights, _ = model_paths(output)
    return weights.with_name(f".{weights.stem}.ckpt")


def write_checkpoint(folder, state: dict, arrays: dict) -> None:
    """Write the checkpoint of a finished epoch: ``checkpoint.npz`` and ``state.json``.

    Both go through :func:`~dedkit.io.atomic.atomic_output` (a temporary renamed into
    place, removed on any failure; a full disk is one line naming the file). Both are
    written in full before either is renamed, so a failure while writing leaves the
    previous epoch's checkpoint whole; only the two renames lie between them.

    Parameters
    ----------
    folder : path-like
        The checkpoint folder (made if missing).
    state : dict
        JSON-serialisable: ``config``, ``dataset_sha256``, ``epoch``, ``param_groups``,
        ``history`` (see :func:`read_checkpoint_state`).
    arrays : dict of str -> ndarray
        ``model/NAME`` (the network's tensors) and ``opt/INDEX/KEY`` (the optimiser's).
    """
    folder = Path(folder)
    with writing(folder):
        folder.mkdir(exist_ok=True)
    text = json.dumps(state, indent=1)
    # the state names the epoch: renamed last, so that it never points ahead of the weights
    with atomic_output(folder / "state.json", record=False) as state_temporary:
        state_temporary.write_text(text, encoding="utf-8")
        with (
            atomic_output(folder / "checkpoint.npz", record=False) as weights_temporary,
            weights_temporary.open("wb") as f,
        ):
            np.savez(f, **arrays)


def remove_incomplete_checkpoint(folder) -> None:
    """After a failed run: remove the checkpoint folder unless it holds a complete
    checkpoint (``state.json`` is renamed into place last), which is kept for --resume."""
    folder = Path(folder)
    if (folder / "state.json").is_file():
        return
    with contextlib.suppress(DedkitError, OSError):
        remove_owned_folder(folder, CHECKPOINT_ENTRIES)


#: the columns of a loss history entry (one per finished epoch)
HISTORY_FIELDS = ("epoch", "train_loss", "test_loss", "test_rmse_x_px", "test_rmse_y_px", "lr",
                  "seconds")  # fmt: skip


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _state_problem(state) -> str | None:
    """What is wrong with a checkpoint's ``state.json`` (None: nothing).

    Every field is checked before the run uses any, so that a damaged or hand-edited
    state is refused before training, not found when the loss curves are written.
    """
    if not isinstance(state, dict):
        return "state.json is not an object"
    if not isinstance(state.get("config"), dict):
        return "state.json has no config object"
    if not isinstance(state.get("dataset_sha256"), str):
        return "state.json has no dataset_sha256"
    epoch = state.get("epoch")
    if not _is_int(epoch) or epoch < 0:
        return f"epoch {epoch!r} is not a count of epochs"
    groups = state.get("param_groups")
    if not (
        isinstance(groups, list)
        and groups
        and all(
            isinstance(g, dict)
            and isinstance(g.get("params"), list)
            and all(_is_int(i) for i in g["params"])
            for g in groups
        )
    ):
        return "param_groups is not a list of the optimiser's parameter groups"
    history = state.get("history")
    if not isinstance(history, list) or len(history) != epoch:
        return f"history is not a list of {epoch} epochs"
    for number, entry in enumerate(history, 1):
        if not isinstance(entry, dict) or set(entry) != set(HISTORY_FIELDS):
            return f"history entry {number} is not an object of {', '.join(HISTORY_FIELDS)}"
        if entry["epoch"] != number or not _is_int(entry["epoch"]):
            return f"history entry {number} is of epoch {entry['epoch']!r}"
        for key in HISTORY_FIELDS[1:]:
            value = entry[key]
            if not (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and math.isfinite(value)
            ):
                return f"history entry {number} {key} {value!r} is not a finite number"
    return None


def _not_a_checkpoint(folder: Path, problem: str) -> DedkitError:
    return DedkitError(
        f"not a checkpoint of 'dedkit learn train' ({problem}); use --force to start afresh",
        path=folder,
    )


def read_checkpoint_state(folder) -> dict:
    """A checkpoint folder's ``state.json``, every field checked (:func:`_state_problem`)."""
    folder = Path(folder)
    try:
        state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        # ValueError covers a JSONDecodeError and undecodable text
        raise _not_a_checkpoint(folder, one_line(error)) from None
    problem = _state_problem(state)
    if problem is not None:
        raise _not_a_checkpoint(folder, problem)
    return state


def read_checkpoint_arrays(folder, shapes: dict | None = None) -> dict:
    """A checkpoint folder's arrays, all real and finite.

    ``shapes`` (name -> shape of the network's tensors), when given, checks the arrays'
    headers before they are loaded: the network's tensors must have these shapes, the
    optimiser's one of them or be scalars (nothing a damaged file declares is allocated).
    """
    folder = Path(folder)
    weights = folder / "checkpoint.npz"
    if shapes is not None and weights.is_file():
        try:
            check_npz_members(
                weights,
                {f"model/{k}": v for k, v in shapes.items()},
                allowed_shapes={(), *shapes.values()},
                what="checkpoint",
            )
        except DedkitError as error:
            message = str(error)[len(error.path) + 2 :] if error.path else str(error)
            raise DedkitError(f"{message}; use --force to start afresh", path=error.path) from None
    try:
        with np.load(weights, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as error:
        # ValueError covers a damaged member and pickled data
        raise _not_a_checkpoint(folder, one_line(error)) from None
    if not any(name.startswith("model/") for name in arrays):
        raise _not_a_checkpoint(folder, "checkpoint.npz holds no network")
    for name, value in arrays.items():
        # NaN weights or optimiser moments would only come back as 'training diverged'
        if value.dtype.kind not in "fiu":
            raise _not_a_checkpoint(folder, f"{name} is {value.dtype}, not real numbers")
        bad = int(value.size - np.count_nonzero(np.isfinite(value)))
        if bad:
            raise DedkitError(
                f"damaged checkpoint: {name} holds {bad} NaN or infinite values; use --force "
                "to start afresh",
                path=folder,
            )
    return arrays


def read_checkpoint(folder, shapes: dict | None = None) -> tuple[dict, dict]:
    """(state, arrays) of a checkpoint folder, both checked (see the two readers)."""
    return read_checkpoint_state(folder), read_checkpoint_arrays(folder, shapes)


class CheckpointFolder:
    """The checkpoints of one training run, in ``path`` (:func:`checkpoint_folder`).

    What :func:`dedkit.learn.train.fit_model` saves each finished epoch through and
    resumes from (its ``Checkpoints`` protocol).

    Examples
    --------
    >>> checkpoints = CheckpointFolder(checkpoint_folder("m"))
    >>> checkpoints.exists()
    False
    """

    def __init__(self, path) -> None:
        self.path = Path(path)

    def exists(self) -> bool:
        return self.path.exists()

    def write(self, state: dict, arrays: dict) -> None:
        """:func:`write_checkpoint` into this folder."""
        write_checkpoint(self.path, state, arrays)

    def read_state(self) -> dict:
        """:func:`read_checkpoint_state` of this folder."""
        return read_checkpoint_state(self.path)

    def read_arrays(self, shapes: dict | None = None) -> dict:
        """:func:`read_checkpoint_arrays` of this folder."""
        return read_checkpoint_arrays(self.path, shapes)

"""Training the localisation network as in the MÖNCH paper (section 3.2).

As in the paper: MSE over the two coordinates, a 7:3 train/test split, each cluster
turned by a random one of the 8 symmetries of the square, Gaussian label noise (sd 1.0,
unit explicit: ``label_noise_unit``), extra pixel noise of 0.18 keV.

**Recipes** (:mod:`dedkit.learn.recipes`). The defaults are the ``shipped`` recipe, how
the shipped model was trained (the ``c16`` network, Adam lr 0.001 cosine-annealed over 12
epochs, label noise 1.0 um), because it learns on a CPU. The paper's own settings (its
7 x 64 network, SGD lr 0.001, momentum 0.9, weight decay 1e-4, batch 128, 100 epochs)
are the ``paper`` recipe: ``TrainConfig.from_recipe('paper')``. SGD at lr 0.001 does not
leave its starting point in a CPU budget (on 2,000 clusters, 10 epochs: loss 3.83 ->
3.89 px^2, RMSE no better than the centroid), hence not the default.

**Reproducibility.** The split depends on ``seed`` only; the shuffling, augmentation and
noise of epoch k come from ``SeedSequence(seed, spawn_key=(k,))`` and the initial weights
from ``torch.manual_seed(seed)``, so a run interrupted and resumed gives the same model as
an uninterrupted one (on the same device and thread count).

**Checkpoints.** After every epoch the network, the optimiser's state and the loss
history are written (atomically, through :func:`dedkit.io.atomic.atomic_output`: a write
failure such as a full disk is one line naming the file, and its temporary is removed) to
a folder beside the output, ``.NAME.ckpt``; a run with ``resume=True`` continues from the
last finished epoch. A run that fails or is stopped keeps the folder only if it holds a
complete checkpoint (to be resumed); a fresh run that fails before its first complete
checkpoint leaves no folder. Before a resumed run uses a
checkpoint, every field of its ``state.json`` is checked (settings, epoch, optimiser
groups, one loss-history entry of finite numbers per finished epoch) and its arrays'
headers against the network, then their values (real and finite): a damaged or foreign
checkpoint is one line, and nothing is written. The folder is removed once
the model is written. Loss curves: ``NAME.loss.csv`` and, with matplotlib,
``NAME.loss.png``.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import shutil
import time
import zipfile
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from dedkit import __version__
from dedkit.errors import DedkitError, one_line
from dedkit.hpd.tables import FEATURE_NAMES
from dedkit.io.atomic import atomic_output, check_outputs, remove_owned_folder, writing
from dedkit.learn.architectures import tensor_shapes
from dedkit.learn.data import (
    LABEL_NOISE_UNITS,
    add_label_noise,
    add_pixel_noise,
    check_crop,
    file_sha256,
    load_training_arrays,
    random_symmetries,
    split_indices,
)
from dedkit.learn.model import ARCHITECTURES, build_model, count_parameters, predict, state_arrays
from dedkit.learn.recipes import DEFAULT_RECIPE, recipe_settings
from dedkit.learn.store import check_npz_members, model_paths, save_model
from dedkit.records.sensor import DEFAULT_PITCH_UM
from dedkit.report import JobReport

__all__ = ["OPTIMIZERS", "SCHEDULES", "TrainConfig", "TrainReport", "train_model"]

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "cosine")


@dataclass
class TrainConfig:
    """Everything that determines a training run (stored on the model card).

    The defaults are the ``shipped`` recipe; :meth:`from_recipe` starts from another.

    Attributes
    ----------
    arch : str
        Architecture preset (:data:`dedkit.learn.model.ARCHITECTURES`).
    epochs : int
    batch_size : int
    optimizer : {'sgd', 'adam'}
    lr, momentum, weight_decay : float
        momentum is SGD's (Adam uses its defaults).
    schedule : {'constant', 'cosine'}
        Learning rate constant, or cosine-annealed to 0 over the run, batch by batch.
    label_noise : float
        Standard deviation of the Gaussian noise added to the labels.
    label_noise_unit : {'px', 'um'}
    pixel_noise_keV : float
        Extra Gaussian noise on the cluster's pixels.
    augment : bool
        Random symmetry of the square per cluster.
    train_fraction : float
    seed : int
    limit : int or None
        Use only the first ``limit`` clusters of the set.
    eval_samples : int
        Test clusters evaluated after every epoch (the loss curve); all at the end.
    threads : int or None
        torch CPU threads (default: torch's).
    device : str
        'auto' (CUDA when available, else CPU), 'cpu' or 'cuda'.
    image_scale_keV : float
        The image is divided by this inside the network.
    recipe : str
        The recipe the settings started from (:data:`dedkit.learn.recipes.RECIPES`;
        recorded, the settings themselves are what counts).
    """

    # the shipped recipe (dedkit.learn.recipes.RECIPES["shipped"], checked by a test)
    arch: str = "c16"
    epochs: int = 12
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    label_noise: float = 1.0
    label_noise_unit: str = "um"
    pixel_noise_keV: float = 0.18
    augment: bool = True
    train_fraction: float = 0.7
    seed: int = 0
    limit: int | None = None
    eval_samples: int = 20000
    threads: int | None = None
    device: str = "auto"
    image_scale_keV: float = 10.0
    recipe: str = DEFAULT_RECIPE

    @classmethod
    def from_recipe(cls, recipe: str = DEFAULT_RECIPE, **settings) -> TrainConfig:
        """The settings of ``recipe`` (``'shipped'`` or ``'paper'``), with those given in
        ``settings`` (None: the recipe's) in their place.

        Examples
        --------
        >>> TrainConfig.from_recipe("paper", epochs=3).optimizer
        'sgd'
        """
        given = {name: value for name, value in settings.items() if value is not None}
        return cls(**{**recipe_settings(recipe), **given, "recipe": recipe})

    def check(self) -> None:
        recipe_settings(self.recipe)  # a known recipe
        if self.arch not in ARCHITECTURES:
            raise DedkitError(
                f"unknown architecture {self.arch!r}; use one of {', '.join(ARCHITECTURES)}"
            )
        if self.optimizer not in OPTIMIZERS:
            raise DedkitError(f"optimizer must be one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise DedkitError(f"schedule must be one of {', '.join(SCHEDULES)}")
        if self.label_noise_unit not in LABEL_NOISE_UNITS:
            raise DedkitError(f"label noise unit must be one of {', '.join(LABEL_NOISE_UNITS)}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise DedkitError("device must be auto, cpu or cuda")
        for name in ("epochs", "batch_size", "eval_samples"):
            if getattr(self, name) < 1:
                raise DedkitError(f"{name.replace('_', ' ')} must be >= 1")
        for name in ("lr", "image_scale_keV"):
            if not getattr(self, name) > 0:
                raise DedkitError(f"{name} must be > 0")
        if self.label_noise < 0 or self.pixel_noise_keV < 0 or self.weight_decay < 0:
            raise DedkitError("noise levels and weight decay must be >= 0")

    def to_dict(self) -> dict:
        return asdict(self)


class TrainReport(JobReport):
    """What a training run did."""

    def text(self) -> str:
        m = self.details.get("metrics", {}).get("split_test", {})
        rmse = m.get("rmse_px", {})
        return (
            f"learn train: wrote {self.output} in {self.seconds:.1f} s "
            f"({self.counts.get('epochs')} epochs, {self.counts.get('train')} training / "
            f"{self.counts.get('test')} test clusters); "
            f"test RMSE x {rmse.get('x', float('nan')):.3f}"
            f" px, y {rmse.get('y', float('nan')):.3f} px"
        )


#: what a checkpoint folder may hold (anything else and --force refuses to remove it)
CHECKPOINT_ENTRIES = r"checkpoint\.npz|state\.json|\.(checkpoint\.npz|state\.json)\.part-\d+"


def checkpoint_folder(output) -> Path:
    """Where the checkpoints of a run writing ``output`` live."""
    weights, _ = model_paths(output)
    return weights.with_name(f".{weights.stem}.ckpt")


def _device(name: str) -> torch.device:
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise DedkitError("no CUDA device is available")
        return torch.device("cuda")
    return torch.device("cpu")


def _learning_rate(config: TrainConfig, step: int, total: int) -> float:
    if config.schedule == "constant":
        return config.lr
    return 0.5 * config.lr * (1 + math.cos(math.pi * min(step, total) / total))


def _make_optimizer(config: TrainConfig, model) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(),
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
        )
    return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


# ----------------------------------------------------------------------------- checkpoints


def _save_checkpoint(folder: Path, model, optimizer, epoch: int, meta: dict) -> None:
    """Write the checkpoint of a finished epoch: ``checkpoint.npz`` and ``state.json``.

    Both go through :func:`~dedkit.io.atomic.atomic_output` (a temporary renamed into
    place, removed on any failure; a full disk is one line naming the file). Both are
    written in full before either is renamed, so a failure while writing leaves the
    previous epoch's checkpoint whole; only the two renames lie between them.
    """
    with writing(folder):
        folder.mkdir(exist_ok=True)
    arrays = {f"model/{k}": v for k, v in state_arrays(model).items()}
    opt = optimizer.state_dict()
    for index, state in opt["state"].items():
        for key, value in state.items():
            arrays[f"opt/{index}/{key}"] = torch.as_tensor(value).detach().cpu().numpy()
    state = {**meta, "epoch": epoch, "param_groups": opt["param_groups"]}
    text = json.dumps(state, indent=1)
    # the state names the epoch: renamed last, so that it never points ahead of the weights
    with atomic_output(folder / "state.json", record=False) as state_temporary:
        state_temporary.write_text(text, encoding="utf-8")
        with (
            atomic_output(folder / "checkpoint.npz", record=False) as weights_temporary,
            weights_temporary.open("wb") as f,
        ):
            np.savez(f, **arrays)


def _remove_incomplete_checkpoint(folder: Path) -> None:
    """After a failed run: remove the checkpoint folder unless it holds a complete
    checkpoint (``state.json`` is renamed into place last), which is kept for --resume."""
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


def _read_checkpoint_state(folder: Path) -> dict:
    """A checkpoint folder's ``state.json``, every field checked (:func:`_state_problem`)."""
    try:
        state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        # ValueError covers a JSONDecodeError and undecodable text
        raise _not_a_checkpoint(folder, one_line(error)) from None
    problem = _state_problem(state)
    if problem is not None:
        raise _not_a_checkpoint(folder, problem)
    return state


def _read_checkpoint_arrays(folder: Path, shapes: dict | None = None) -> dict:
    """A checkpoint folder's arrays, all real and finite.

    ``shapes`` (name -> shape of the network's tensors), when given, checks the arrays'
    headers before they are loaded: the network's tensors must have these shapes, the
    optimiser's one of them or be scalars (nothing a damaged file declares is allocated).
    """
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


def _read_checkpoint(folder: Path, shapes: dict | None = None) -> tuple[dict, dict]:
    """(state, arrays) of a checkpoint folder, both checked (see the two readers)."""
    return _read_checkpoint_state(folder), _read_checkpoint_arrays(folder, shapes)


def _restore_checkpoint(folder: Path, state: dict, arrays: dict, model, optimizer) -> None:
    """Load a checkpoint's weights and optimiser state; a checkpoint of another network
    or optimiser is one clear error."""
    tensors = {k[len("model/") :]: v for k, v in arrays.items() if k.startswith("model/")}
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    for name in sorted(set(expected) | set(tensors)):
        if name not in tensors or name not in expected or tensors[name].shape != expected[name]:
            found = tensors[name].shape if name in tensors else "missing"
            raise DedkitError(
                f"the checkpoint is of another network (tensor {name}: {found}, this "
                f"network's: {expected.get(name, 'none')}); use --force to start afresh",
                path=folder,
            )
    try:
        model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in tensors.items()})
        opt_state: dict = {}
        for name, value in arrays.items():
            if name.startswith("opt/"):
                _, index, key = name.split("/", 2)
                opt_state.setdefault(int(index), {})[key] = torch.from_numpy(np.asarray(value))
        optimizer.load_state_dict({"state": opt_state, "param_groups": state["param_groups"]})
    except (RuntimeError, ValueError, KeyError, TypeError) as error:
        raise DedkitError(
            f"the checkpoint does not fit this network and optimiser ({one_line(error)}); "
            "use --force to start afresh",
            path=folder,
        ) from None


# ----------------------------------------------------------------------------- metrics


def rmse_metrics(predicted: np.ndarray, truth: np.ndarray) -> dict:
    """RMSE and mean residual (predicted - truth) per axis, pixels."""
    residual = np.asarray(predicted, np.float64) - np.asarray(truth, np.float64)
    return {
        "n": int(len(residual)),
        "rmse_px": {a: float(np.sqrt(np.mean(residual[:, i] ** 2))) for i, a in enumerate("xy")},
        "mean_residual_px": {a: float(np.mean(residual[:, i])) for i, a in enumerate("xy")},
    }


def loss_curve_paths(output) -> tuple[Path, Path]:
    """(``NAME.loss.csv``, ``NAME.loss.png``) of a model ``output``."""
    weights, _ = model_paths(output)
    return weights.with_name(weights.stem + ".loss.csv"), weights.with_name(
        weights.stem + ".loss.png"
    )


def write_loss_curves(history: list[dict], output) -> tuple[Path, Path | None]:
    """``NAME.loss.csv`` and, if matplotlib is installed, ``NAME.loss.png``."""
    csv_path, png_path = loss_curve_paths(output)
    with atomic_output(csv_path) as temporary, temporary.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return csv_path, None
    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(5.5, 3.8), dpi=110)
    ax.plot(epochs, [h["train_loss"] for h in history], "o-", label="training (noisy labels)")
    ax.plot(epochs, [h["test_loss"] for h in history], "s-", label="test")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE loss (px$^2$, both axes)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_output(png_path) as temporary:
        fig.savefig(temporary, format="png")
    plt.close(fig)
    return csv_path, png_path


# ----------------------------------------------------------------------------- training


def train_model(
    dataset,
    output,
    config: TrainConfig | None = None,
    *,
    resume: bool = False,
    force: bool = False,
    command: str | None = None,
    progress=None,
) -> TrainReport:
    """Train a network on a training set and save it as ``output`` (.npz + .json card).

    Parameters
    ----------
    dataset : path-like
        Training set of ``dedkit sim dataset`` (:mod:`dedkit.io.training`).
    output : path-like
        The model: ``M`` / ``M.npz`` / ``M.json``.
    config : TrainConfig
    resume : bool
        Continue from the checkpoint of an interrupted run with the same settings.
    force : bool
        Overwrite an existing model, discard an existing checkpoint (without ``resume``).
    command : str, optional
        The command line, recorded on the card.
    progress : callable, optional
        ``progress(done, total, **info)`` after each batch (done and total in batches,
        info: epoch, loss).
    """
    folder = checkpoint_folder(output)
    fresh = not resume and (force or not (folder.exists() or folder.is_symlink()))
    try:
        return _train_model(dataset, output, config, resume=resume, force=force,
                            command=command, progress=progress)  # fmt: skip
    except BaseException:
        # a fresh run that stopped before its first complete checkpoint leaves no
        # folder; one with a complete checkpoint keeps it for --resume
        if fresh:
            _remove_incomplete_checkpoint(folder)
        raise


def _train_model(dataset, output, config, *, resume, force, command, progress) -> TrainReport:
    started = time.perf_counter()
    config = config or TrainConfig()
    config.check()
    weights_path, card_path = model_paths(output)
    # every file the run writes, against every file it reads (the resumed checkpoint too),
    # none inside the installed package
    folder = checkpoint_folder(output)
    check_outputs(
        [weights_path, card_path, *loss_curve_paths(output)],
        [dataset, folder if resume else None],
        force,
    )
    if folder.exists() and not resume:
        if not force:
            raise DedkitError(
                "an unfinished training run's checkpoint is in the way; use --resume to "
                "continue it or --force to start afresh",
                path=folder,
            )
        remove_owned_folder(folder, CHECKPOINT_ENTRIES)
    if resume and not folder.exists():
        raise DedkitError("nothing to resume: no checkpoint beside the output", path=folder)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = _device(config.device)

    data = load_training_arrays(dataset, config.limit)
    check_crop(data, ARCHITECTURES[config.arch].crop, dataset)
    train_index, test_index = split_indices(len(data), config.train_fraction, config.seed)
    train, test = data.subset(train_index), data.subset(test_index)
    pitch_um = float(data.sensor.get("pitch_um", DEFAULT_PITCH_UM))
    feature_mean = train.features.astype(np.float64).mean(axis=0)
    feature_std = train.features.astype(np.float64).std(axis=0)
    feature_std[feature_std == 0] = 1.0  # a constant feature (the beam energy)
    torch.manual_seed(config.seed)
    model = build_model(
        config.arch,
        image_scale=config.image_scale_keV,
        feature_mean=feature_mean,
        feature_std=feature_std,
    ).to(device)
    optimizer = _make_optimizer(config, model)
    dataset_hash = file_sha256(dataset)
    meta = {"config": config.to_dict(), "dataset_sha256": dataset_hash}
    history: list[dict] = []
    first_epoch = 0
    if resume:
        # the settings and the data are compared before anything is loaded, so that a
        # checkpoint of another run (another network, another set) is named as such
        state = _read_checkpoint_state(folder)
        stored = state["config"]
        differ = sorted(
            k
            for k in meta["config"]
            if k not in ("threads", "recipe") and stored.get(k) != meta["config"][k]
        )
        if differ or state.get("dataset_sha256") != dataset_hash:
            raise DedkitError(
                "the checkpoint was made with other settings "
                f"({', '.join(differ) or 'training data'}); use --force to start afresh",
                path=folder,
            )
        if not 0 <= state["epoch"] <= config.epochs:
            raise DedkitError(
                f"the checkpoint is at epoch {state['epoch']} of {config.epochs}; use --force "
                "to start afresh",
                path=folder,
            )
        arrays = _read_checkpoint_arrays(folder, tensor_shapes(ARCHITECTURES[config.arch]))
        _restore_checkpoint(folder, state, arrays, model, optimizer)
        history = state["history"]
        first_epoch = state["epoch"]
        model.to(device)

    n_batches = math.ceil(len(train) / config.batch_size)
    total_steps = config.epochs * n_batches
    eval_part = test.subset(slice(0, min(config.eval_samples, len(test))))
    for epoch in range(first_epoch, config.epochs):
        epoch_started = time.perf_counter()
        rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(epoch,)))
        order = rng.permutation(len(train))
        model.train()
        total_loss = 0.0
        for b in range(n_batches):
            chosen = np.sort(order[b * config.batch_size : (b + 1) * config.batch_size])
            images = train.images[chosen]
            targets = train.targets[chosen]
            features = train.features[chosen]
            if config.augment:
                images, targets, features = random_symmetries(images, targets, features, rng)
            images = add_pixel_noise(images, config.pixel_noise_keV, rng)
            targets = add_label_noise(
                targets, config.label_noise, config.label_noise_unit, pitch_um, rng
            )
            step = epoch * n_batches + b
            for group in optimizer.param_groups:
                group["lr"] = _learning_rate(config, step, total_steps)
            x = torch.from_numpy(np.ascontiguousarray(images)).to(device)
            f = torch.from_numpy(np.ascontiguousarray(features)).to(device)
            y = torch.from_numpy(np.ascontiguousarray(targets)).to(device)
            optimizer.zero_grad(set_to_none=True)
            loss = torch.nn.functional.mse_loss(model(x, f), y)
            loss.backward()
            optimizer.step()
            value = float(loss.detach())
            if not math.isfinite(value):
                raise DedkitError(
                    f"training diverged at epoch {epoch + 1} (loss {value}); lower the "
                    "learning rate"
                )
            total_loss += value * len(chosen)
            if progress is not None:
                progress(step + 1, total_steps, epoch=epoch + 1, loss=value)
        predicted = predict(model, eval_part.images, eval_part.features, device=device)
        metrics = rmse_metrics(predicted, eval_part.targets)
        history.append(
            {
                "epoch": epoch + 1,
                "train_loss": total_loss / len(train),
                "test_loss": float(np.mean((predicted - eval_part.targets) ** 2)),
                "test_rmse_x_px": metrics["rmse_px"]["x"],
                "test_rmse_y_px": metrics["rmse_px"]["y"],
                "lr": optimizer.param_groups[0]["lr"],
                "seconds": round(time.perf_counter() - epoch_started, 2),
            }
        )
        _save_checkpoint(folder, model, optimizer, epoch + 1, {**meta, "history": history})

    model.eval()
    predicted = predict(model, test.images, test.features, device=device)
    split_metrics = rmse_metrics(predicted, test.targets)
    centroid_metrics = rmse_metrics(test.centroid, test.targets)
    arch = ARCHITECTURES[config.arch]
    parameters = data.attrs.get("parameters", {})
    card = {
        "architecture": arch.to_dict(),
        "n_parameters": count_parameters(model),
        "input": {
            "crop": data.crop,
            "image_units": "keV",
            "image_scale_keV": config.image_scale_keV,
            "feature_names": list(FEATURE_NAMES),
            "feature_mean": feature_mean.tolist(),
            "feature_std": feature_std.tolist(),
        },
        "output": "impact point (x, y) in pixels from the crop centre (the centre of the "
        "cluster's reference pixel); frame position = reference pixel + 0.5 + output",
        "energy_keV": data.energy_keV,
        "sensor": {
            "thickness_um": data.sensor.get("thickness_um"),
            "pitch_um": data.sensor.get("pitch_um"),
        },
        "training": {
            "dataset": Path(dataset).name,
            "dataset_sha256": dataset_hash,
            "dataset_seed": parameters.get("seed"),
            "n_clusters": len(data),
            "n_train": len(train),
            "n_test": len(test),
            "config": config.to_dict(),
            "history": history,
            "device": str(device),
            "torch": torch.__version__,
            "dedkit": __version__,
        },
        "metrics": {"split_test": split_metrics, "split_test_centroid": centroid_metrics},
        "command": command,
    }
    save_model(output, {k: v.astype(np.float32) for k, v in state_arrays(model).items()}, card,
               force=force or resume)  # fmt: skip
    csv_path, png_path = write_loss_curves(history, output)
    shutil.rmtree(folder, ignore_errors=True)
    return TrainReport(
        "train",
        [str(dataset)],
        str(weights_path),
        time.perf_counter() - started,
        {"epochs": config.epochs, "train": len(train), "test": len(test)},
        {
            "card": str(card_path),
            "loss_csv": str(csv_path),
            "loss_png": None if png_path is None else str(png_path),
            "metrics": card["metrics"],
            "resumed_from_epoch": first_epoch,
            "device": str(device),
        },
    )

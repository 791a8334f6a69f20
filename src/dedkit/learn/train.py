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
history are handed to the run's checkpoints (:class:`Checkpoints`: ``dedkit learn
train`` gives :class:`dedkit.io.checkpoints.CheckpointFolder`, a folder beside the output,
``.NAME.ckpt``); a run with ``resume=True`` continues from the last finished epoch, its
settings and training data compared with the checkpoint's first. This module writes no
files: :func:`dedkit.jobs.learn.train_model` checks the outputs, writes the model, the
loss curves (``NAME.loss.csv`` and, with matplotlib, ``NAME.loss.png``, drawn by
:func:`loss_figure`) and removes the checkpoints once the model is written.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from dedkit import __version__
from dedkit.errors import DedkitError, one_line
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
from dedkit.records.sensor import DEFAULT_PITCH_UM
from dedkit.records.tables import FEATURE_NAMES
from dedkit.report import JobReport

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "Checkpoints",
    "TrainConfig",
    "TrainReport",
    "TrainedModel",
    "fit_model",
    "loss_figure",
]

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


class Checkpoints(Protocol):
    """Where a run saves each finished epoch and resumes from (no file is written here:
    :class:`dedkit.io.checkpoints.CheckpointFolder` is the one ``dedkit learn train``
    uses).

    Attributes
    ----------
    path : Path
        Named by the errors about the checkpoint.
    """

    path: Path

    def write(self, state: dict, arrays: dict) -> None:
        """Keep the checkpoint of a finished epoch (``state``: JSON-serialisable settings,
        epoch, optimiser groups and history; ``arrays``: ``model/NAME`` and
        ``opt/INDEX/KEY``), replacing the previous one only once it is complete."""

    def read_state(self) -> dict:
        """The last checkpoint's state, every field checked (a DedkitError otherwise)."""

    def read_arrays(self, shapes: dict | None = None) -> dict:
        """The last checkpoint's arrays, real and finite, the network's of ``shapes``."""


def _save_checkpoint(checkpoints: Checkpoints, model, optimizer, epoch: int, meta: dict) -> None:
    """Hand the checkpoint of a finished epoch (network, optimiser, history) to
    ``checkpoints``."""
    arrays = {f"model/{k}": v for k, v in state_arrays(model).items()}
    opt = optimizer.state_dict()
    for index, state in opt["state"].items():
        for key, value in state.items():
            arrays[f"opt/{index}/{key}"] = torch.as_tensor(value).detach().cpu().numpy()
    state = {**meta, "epoch": epoch, "param_groups": opt["param_groups"]}
    checkpoints.write(state, arrays)


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


def loss_figure(history: list[dict]):
    """The loss curves of a run (training and test MSE per epoch, log scale), drawn, not
    written (``dedkit learn train`` writes them as ``NAME.loss.png``).

    Returns
    -------
    matplotlib.figure.Figure or None
        With an Agg canvas (no pyplot state); None when matplotlib is not installed.
    """
    try:
        # the object API with the Agg canvas: no pyplot state, no display needed
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(5.5, 3.8), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.plot(epochs, [h["train_loss"] for h in history], "o-", label="training (noisy labels)")
    ax.plot(epochs, [h["test_loss"] for h in history], "s-", label="test")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE loss (px$^2$, both axes)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- training


@dataclass
class TrainedModel:
    """What a training run made (:func:`fit_model`), for the job to write.

    Attributes
    ----------
    state : dict of str -> ndarray
        The network's tensors, float32 (what :func:`dedkit.io.model_files.save_model`
        stores).
    card : dict
        The model card (architecture, input, energy, sensor, training, metrics, command).
    history : list of dict
        One entry per epoch (:data:`dedkit.io.checkpoints.HISTORY_FIELDS`).
    n_train, n_test : int
        Clusters in the training and test splits.
    resumed_from_epoch : int
        The epoch the run started from (0: a fresh run).
    device : str
    """

    state: dict
    card: dict
    history: list
    n_train: int
    n_test: int
    resumed_from_epoch: int
    device: str


def fit_model(
    dataset,
    config: TrainConfig,
    checkpoints: Checkpoints,
    *,
    resume: bool = False,
    command: str | None = None,
    progress=None,
) -> TrainedModel:
    """Train a network on a training set; nothing is written here.

    The settings are checked first (``config.check()``); the checkpoint of every
    finished epoch is handed to ``checkpoints``, and with ``resume`` the run continues
    from its last one (its settings and training data must be this run's). The caller
    checks the outputs and writes the model (:func:`dedkit.jobs.learn.train_model`).

    Parameters
    ----------
    dataset : path-like
        Training set of ``dedkit sim dataset`` (:mod:`dedkit.io.training`).
    config : TrainConfig
    checkpoints : Checkpoints
        Where each finished epoch is kept (:class:`dedkit.io.checkpoints.CheckpointFolder`).
    resume : bool
        Continue from the last checkpoint in ``checkpoints``.
    command : str, optional
        The command line, recorded on the card.
    progress : callable, optional
        ``progress(done, total, **info)`` after each batch (done and total in batches,
        info: epoch, loss).

    Returns
    -------
    TrainedModel
    """
    config.check()
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
        state = checkpoints.read_state()
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
                path=checkpoints.path,
            )
        if not 0 <= state["epoch"] <= config.epochs:
            raise DedkitError(
                f"the checkpoint is at epoch {state['epoch']} of {config.epochs}; use --force "
                "to start afresh",
                path=checkpoints.path,
            )
        arrays = checkpoints.read_arrays(tensor_shapes(ARCHITECTURES[config.arch]))
        _restore_checkpoint(checkpoints.path, state, arrays, model, optimizer)
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
        _save_checkpoint(checkpoints, model, optimizer, epoch + 1, {**meta, "history": history})

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
    return TrainedModel(
        {k: v.astype(np.float32) for k, v in state_arrays(model).items()},
        card,
        history,
        len(train),
        len(test),
        first_epoch,
        str(device),
    )

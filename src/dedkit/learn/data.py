"""Training data for the localisation network: arrays from training sets, the 7:3 split,
and the augmentations of the MÖNCH paper (section 3.2).

Targets are the true entry point **relative to the crop's centre, in pixels**: a training
set stores ``entry_x``/``entry_y`` in the crop frame (crop pixel [i, j] covering
``j <= x < j + 1``, ``i <= y < i + 1``, see ``docs/simulation.md``), whose centre is
(7.5, 7.5) for a 15 x 15 crop, so ``target = entry - 7.5``. With the cluster table's
reference pixel (x, y) the frame position is ``x + 0.5 + target_x``.

**The 8 symmetries of the square.** A symmetry is a number 0-7, ``transpose * 4 +
flip_y * 2 + flip_x``, applied in that order: transpose (image[i, j] -> image[j, i],
(tx, ty) -> (ty, tx), extents x and y swapped), then mirror the columns (tx -> -tx), then
the rows (ty -> -ty). Positions relative to the centre transform with the image because a
crop of odd side is mirrored about its centre pixel's centre.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dedkit.errors import DedkitError
from dedkit.io.training import read_training_attrs, read_training_set, training_set_length
from dedkit.records.tables import FEATURE_NAMES

__all__ = [
    "LABEL_NOISE_UNITS",
    "ClusterArrays",
    "add_label_noise",
    "add_pixel_noise",
    "apply_symmetry",
    "check_crop",
    "file_sha256",
    "load_training_arrays",
    "random_symmetries",
    "split_indices",
]

#: Units in which the label noise's standard deviation may be given
LABEL_NOISE_UNITS = ("px", "um")
_EXTENT_X = FEATURE_NAMES.index("extent_x_px")
_EXTENT_Y = FEATURE_NAMES.index("extent_y_px")


@dataclass
class ClusterArrays:
    """Clusters with their truth, as the network sees them.

    Attributes
    ----------
    images : (n, crop, crop) float32
        keV.
    features : (n, 7) float32
    targets : (n, 2) float32
        True entry point (x, y) in pixels from the crop's centre.
    backscattered : (n,) bool
    deposit_keV : (n,) float32
    centroid : (n, 2) float64
        Charge centroid in pixels from the crop's centre.
    attrs : dict
        The training set's attributes (energy, sensor, ...).
    """

    images: np.ndarray
    features: np.ndarray
    targets: np.ndarray
    backscattered: np.ndarray
    deposit_keV: np.ndarray
    centroid: np.ndarray
    attrs: dict

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index) -> ClusterArrays:
        return ClusterArrays(
            self.images[index],
            self.features[index],
            self.targets[index],
            self.backscattered[index],
            self.deposit_keV[index],
            self.centroid[index],
            self.attrs,
        )

    @property
    def crop(self) -> int:
        return self.images.shape[-1]

    @property
    def energy_keV(self) -> float | None:
        return self.attrs.get("parameters", {}).get("energy_keV")

    @property
    def sensor(self) -> dict:
        return self.attrs.get("parameters", {}).get("sensor", {})


def load_training_arrays(path, limit: int | None = None) -> ClusterArrays:
    """The first ``limit`` rows (all by default) of a training set (``dedkit sim dataset``).

    Parameters
    ----------
    path : path-like
    limit : int, optional

    Returns
    -------
    ClusterArrays
    """
    n = training_set_length(path)
    stop = n if limit is None else min(int(limit), n)
    if stop < 1:
        raise DedkitError("the training set has no rows", path=path)
    columns = read_training_set(path, 0, stop)
    attrs = read_training_attrs(path)
    names = attrs.get("feature_names")
    if names is not None and tuple(names) != FEATURE_NAMES:
        raise DedkitError(f"unexpected feature columns {names}", path=path)
    images = np.ascontiguousarray(columns["image"], dtype=np.float32)
    if images.shape[1] != images.shape[2] or images.shape[1] % 2 != 1:
        raise DedkitError(f"crops must be square of odd side, got {images.shape[1:]}", path=path)
    centre = images.shape[1] / 2
    targets = np.stack([columns["entry_x"] - centre, columns["entry_y"] - centre], axis=1)
    centroid = np.stack([columns["centroid_x"] - centre, columns["centroid_y"] - centre], axis=1)
    return ClusterArrays(
        images,
        np.ascontiguousarray(columns["features"], dtype=np.float32),
        targets.astype(np.float32),
        np.asarray(columns["backscattered"], dtype=bool),
        np.asarray(columns["deposit_keV"], dtype=np.float32),
        centroid,
        attrs,
    )


def check_crop(data: ClusterArrays, crop: int, path=None) -> None:
    """Refuse clusters whose crops are not the ``crop`` x ``crop`` the network takes.

    Raises
    ------
    DedkitError
    """
    if data.crop != crop:
        raise DedkitError(
            f"the training set's crops are {data.crop} x {data.crop}, the network takes "
            f"{crop} x {crop} (the crops of 'dedkit sim dataset' and 'dedkit hpd clusters "
            "--finder connected')",
            path=path,
        )


def file_sha256(path) -> str:
    """SHA-256 of a file (the training data's fingerprint on a model card)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def split_indices(n: int, train_fraction: float = 0.7, seed: int = 0):
    """A fixed random split of ``range(n)`` into training and test indices (7:3 default).

    Returns
    -------
    train, test : ndarray of int64, each sorted
    """
    if not 0 < train_fraction < 1:
        raise DedkitError(f"train fraction must be between 0 and 1, got {train_fraction}")
    order = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(7,))).permutation(n)
    n_train = int(round(n * train_fraction))
    if n_train < 1 or n_train >= n:
        raise DedkitError(f"{n} samples cannot be split {train_fraction:g} : rest")
    return np.sort(order[:n_train]), np.sort(order[n_train:])


def apply_symmetry(images, targets, features, op: int):
    """Apply symmetry ``op`` (0-7, see the module docstring) to clusters and labels.

    Parameters
    ----------
    images : (n, s, s) array
    targets : (n, 2) array
        (x, y) from the crop centre.
    features : (n, 7) array
    op : int

    Returns
    -------
    images, targets, features : new arrays
    """
    if not 0 <= op < 8:
        raise DedkitError(f"a symmetry of the square is a number 0-7, got {op}")
    images = np.asarray(images)
    targets = np.array(targets, dtype=np.float32, copy=True)
    features = np.array(features, copy=True)
    if op & 4:
        images = images.transpose(0, 2, 1)
        targets = targets[:, ::-1].copy()
        features[:, [_EXTENT_X, _EXTENT_Y]] = features[:, [_EXTENT_Y, _EXTENT_X]]
    if op & 1:
        images = images[:, :, ::-1]
        targets[:, 0] *= -1
    if op & 2:
        images = images[:, ::-1, :]
        targets[:, 1] *= -1
    return np.ascontiguousarray(images), targets, features


def random_symmetries(images, targets, features, rng: np.random.Generator):
    """Each cluster transformed by its own random symmetry (the 8x augmentation)."""
    ops = rng.integers(0, 8, len(images))
    out_images = np.empty_like(images)
    out_targets = np.empty_like(targets)
    out_features = np.empty_like(features)
    for op in range(8):
        chosen = np.flatnonzero(ops == op)
        if len(chosen):
            i, t, f = apply_symmetry(images[chosen], targets[chosen], features[chosen], op)
            out_images[chosen], out_targets[chosen], out_features[chosen] = i, t, f
    return out_images, out_targets, out_features


def add_label_noise(targets, sd: float, unit: str, pitch_um: float, rng: np.random.Generator):
    """Gaussian label noise (label smoothing) of standard deviation ``sd`` in ``unit``
    ('px' or 'um', converted with the pixel pitch); targets are in pixels."""
    if unit not in LABEL_NOISE_UNITS:
        raise DedkitError(f"label noise unit must be one of {', '.join(LABEL_NOISE_UNITS)}")
    if sd < 0:
        raise DedkitError(f"label noise must be >= 0, got {sd}")
    if sd == 0:
        return targets
    sd_px = sd if unit == "px" else sd / pitch_um
    return targets + rng.normal(0.0, sd_px, targets.shape).astype(targets.dtype)


def add_pixel_noise(images, sd_keV: float, rng: np.random.Generator):
    """Extra Gaussian noise of ``sd_keV`` on the cluster's pixels (the non-zero ones: the
    finder has zeroed the rest of the crop, as it will at inference)."""
    if sd_keV < 0:
        raise DedkitError(f"pixel noise must be >= 0 keV, got {sd_keV}")
    if sd_keV == 0:
        return images
    noise = rng.normal(0.0, sd_keV, images.shape).astype(images.dtype)
    return images + np.where(images != 0, noise, 0).astype(images.dtype)

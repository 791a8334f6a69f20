"""The MÖNCH paper's network (section 3.1) and lighter variants of it.

The network takes a 15 x 15 cluster image (keV) and the 7 cluster features
(:data:`dedkit.records.tables.FEATURE_NAMES`) and returns the impact point relative to the
crop's centre, in pixels. Architectures are described by plain :class:`Architecture`
values, so a model file stores its architecture as JSON and is rebuilt without
unpickling anything.

- backbone: ``len(channels)`` unpadded 3 x 3 convolutions (15 -> 13 -> ... -> 1 for seven
  of them), ReLU between every two of them; the paper's is seven of 64 channels. When
  the convolutions do not reduce the image to 1 x 1 (fewer than seven), the rest is
  averaged (global average pooling).
- feature branch: linear 7 -> ``feature_width`` and tanh (the paper's 32).
- head: linear over the concatenation (channels[-1] + feature_width, the paper's 96) to 2.

Inputs are normalised inside the model (``image_scale`` keV, feature mean/sd), so a
model is used on raw clusters and features; the normalisation is stored with it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dedkit.errors import DedkitError
from dedkit.learn.architectures import (
    ARCHITECTURES,
    N_FEATURES,
    Architecture,
    architecture,
)

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "LocalizerNet",
    "architecture",
    "build_model",
    "count_parameters",
    "network_from_arrays",
    "predict",
    "state_arrays",
]


class LocalizerNet(nn.Module):
    """Backbone CNN + feature branch -> 2-D impact point (pixels from the crop centre).

    Parameters
    ----------
    arch : Architecture
    image_scale : float
        keV by which the image is divided before the first convolution.
    feature_mean, feature_std : (7,) array
        Feature normalisation (z-score) applied inside the model.
    """

    def __init__(self, arch: Architecture, image_scale=10.0, feature_mean=None, feature_std=None):
        super().__init__()
        if arch.output_side < 1:
            raise DedkitError(
                f"{len(arch.channels)} unpadded 3 x 3 convolutions do not fit a "
                f"{arch.crop} x {arch.crop} crop"
            )
        self.arch = arch
        layers: list[nn.Module] = []
        previous = 1
        for i, width in enumerate(arch.channels):
            layers.append(nn.Conv2d(previous, width, 3))
            if i < len(arch.channels) - 1:
                layers.append(nn.ReLU(inplace=True))
            previous = width
        self.backbone = nn.Sequential(*layers)
        if arch.feature_width:
            self.features = nn.Sequential(nn.Linear(N_FEATURES, arch.feature_width), nn.Tanh())
        else:
            self.features = None
        self.head = nn.Linear(previous + arch.feature_width, 2)
        mean = np.zeros(N_FEATURES) if feature_mean is None else np.asarray(feature_mean)
        std = np.ones(N_FEATURES) if feature_std is None else np.asarray(feature_std)
        self.register_buffer("image_scale", torch.tensor(float(image_scale)))
        self.register_buffer("feature_mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("feature_std", torch.as_tensor(std, dtype=torch.float32))

    def forward(self, image: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """``image`` (n, 15, 15) or (n, 1, 15, 15) keV, ``features`` (n, 7) -> (n, 2)
        (x, y) in pixels from the crop centre."""
        if image.dim() == 3:
            image = image.unsqueeze(1)
        z = self.backbone(image / self.image_scale)
        z = z.mean(dim=(2, 3)) if z.shape[-1] > 1 else z.flatten(1)
        if self.features is not None:
            f = (features - self.feature_mean) / self.feature_std
            z = torch.cat([z, self.features(f)], dim=1)
        return self.head(z)


def build_model(arch: Architecture | str, **normalisation) -> LocalizerNet:
    """A freshly initialised network of architecture ``arch`` (a preset name or value)."""
    if isinstance(arch, str):
        arch = architecture(arch)
    return LocalizerNet(arch, **normalisation)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable numbers in ``model``."""
    return sum(p.numel() for p in model.parameters())


def state_arrays(model: nn.Module) -> dict[str, np.ndarray]:
    """The network's tensors as float32 numpy arrays (what
    :func:`dedkit.io.model_files.save_model` stores)."""
    return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}


def network_from_arrays(arch: Architecture, state: dict, *, path=None) -> LocalizerNet:
    """Rebuild a network from its architecture and stored arrays (strict: every tensor
    must be there with the right shape); ``path``, the weights file, is named in an
    error."""
    model = LocalizerNet(arch)
    expected = model.state_dict()
    if set(state) != set(expected):
        missing = sorted(set(expected) - set(state))
        extra = sorted(set(state) - set(expected))
        raise DedkitError(f"model tensors do not fit the architecture (missing {missing}, "
                          f"unexpected {extra})", path=path)  # fmt: skip
    tensors = {}
    for name, value in state.items():
        value = np.asarray(value)
        if value.ndim == 1 and value.size == 1 and expected[name].dim() == 0:
            value = value.reshape(())  # a scalar saved by np.ascontiguousarray
        if tuple(value.shape) != tuple(expected[name].shape):
            raise DedkitError(
                f"model tensor {name} is {tuple(value.shape)}, the architecture needs "
                f"{tuple(expected[name].shape)}",
                path=path,
            )
        tensors[name] = torch.as_tensor(np.asarray(value, dtype=np.float32))
    model.load_state_dict(tensors)
    return model.eval()


def predict(
    model: nn.Module,
    images,
    features,
    *,
    batch_size: int = 8192,
    device=None,
    channels_last: bool = False,
) -> np.ndarray:
    """Impact points (n, 2) in pixels from the crop centre, in batches, no gradients.

    Parameters
    ----------
    model : LocalizerNet (or a compiled/quantised version of it)
    images : (n, s, s) array, keV
    features : (n, 7) array
    batch_size : int
    device : torch.device, optional
    channels_last : bool
        Feed the images in channels-last memory format (for a model converted with
        ``model.to(memory_format=torch.channels_last)``; about 2x faster on CPU).
    """
    images = np.asarray(images, dtype=np.float32)
    features = np.asarray(features, dtype=np.float32)
    out = np.empty((len(images), 2), dtype=np.float64)
    was_training = getattr(model, "training", False)
    if was_training:
        model.eval()
    with torch.inference_mode():
        for first in range(0, len(images), batch_size):
            image = torch.from_numpy(images[first : first + batch_size])
            if channels_last:
                image = image.unsqueeze(1).contiguous(memory_format=torch.channels_last)
            feature = torch.from_numpy(features[first : first + batch_size])
            if device is not None:
                image, feature = image.to(device), feature.to(device)
            out[first : first + len(image)] = model(image, feature).float().cpu().numpy()
    if was_training:
        model.train()
    return out

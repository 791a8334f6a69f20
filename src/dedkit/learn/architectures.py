"""Network shapes without torch: :class:`Architecture`, the named presets and the shape
of every tensor a network of an architecture holds.

Kept apart from :mod:`dedkit.learn.model` (which imports torch) so that a model card and
its weights' headers are checked (:mod:`dedkit.learn.store`, through
:mod:`dedkit.io.model_files`) before torch is imported
and before any tensor is read: a weights file whose members declare other shapes than
its card's architecture is refused without allocating them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from dedkit.errors import DedkitError

__all__ = ["ARCHITECTURES", "CROP", "N_FEATURES", "Architecture", "architecture", "tensor_shapes"]

CROP = 15
N_FEATURES = 7


@dataclass(frozen=True)
class Architecture:
    """What determines a network's shape.

    Attributes
    ----------
    name : str
        Preset name ('paper', 'c32', 'c16', ...) or 'custom'.
    channels : tuple of int
        Output channels of each unpadded 3 x 3 convolution.
    feature_width : int
        Width of the feature branch (0: no feature branch).
    crop : int
        Side of the cluster image.
    """

    name: str
    channels: tuple[int, ...]
    feature_width: int = 32
    crop: int = CROP

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Architecture:
        try:
            return cls(
                str(d["name"]),
                tuple(int(c) for c in d["channels"]),
                int(d.get("feature_width", 32)),
                int(d.get("crop", CROP)),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise DedkitError(f"bad architecture description {d!r}: {error}") from None

    @property
    def output_side(self) -> int:
        return self.crop - 2 * len(self.channels)


#: Named architectures: the paper's and lighter ones of the same shape
ARCHITECTURES = {
    "paper": Architecture("paper", (64,) * 7),
    "c48": Architecture("c48", (48,) * 7),
    "c32": Architecture("c32", (32,) * 7),
    "c24": Architecture("c24", (24,) * 7),
    "c16": Architecture("c16", (16,) * 7),
    "c8": Architecture("c8", (8,) * 7),
    "c32x5": Architecture("c32x5", (32,) * 5),
}


def architecture(name: str) -> Architecture:
    """The preset called ``name`` (see :data:`ARCHITECTURES`)."""
    if name not in ARCHITECTURES:
        raise DedkitError(f"unknown architecture {name!r}; use one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def tensor_shapes(arch: Architecture) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor of :class:`dedkit.learn.model.LocalizerNet` built
    for ``arch`` (its ``state_dict``), computed without building it.

    Examples
    --------
    >>> tensor_shapes(Architecture("custom", (4,), 0))["backbone.0.weight"]
    (4, 1, 3, 3)
    """
    shapes: dict[str, tuple[int, ...]] = {}
    previous = 1
    for i, width in enumerate(arch.channels):
        # a ReLU between every two convolutions: the convolutions are layers 0, 2, 4, ...
        shapes[f"backbone.{2 * i}.weight"] = (width, previous, 3, 3)
        shapes[f"backbone.{2 * i}.bias"] = (width,)
        previous = width
    if arch.feature_width:
        shapes["features.0.weight"] = (arch.feature_width, N_FEATURES)
        shapes["features.0.bias"] = (arch.feature_width,)
    shapes["head.weight"] = (2, previous + arch.feature_width)
    shapes["head.bias"] = (2,)
    shapes["image_scale"] = ()
    shapes["feature_mean"] = (N_FEATURES,)
    shapes["feature_std"] = (N_FEATURES,)
    return shapes

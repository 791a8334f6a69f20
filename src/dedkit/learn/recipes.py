"""Named training recipes: the settings a training run starts from (no torch import, so
the command line can show them in its help).

- ``shipped`` (the default): how the shipped model ``moench200`` was trained; the lighter
  ``c16`` network with Adam (lr 0.001, cosine-annealed to 0 over 12 epochs), label noise
  1.0 um. It learns on a CPU: on 2,000 Geant4 clusters of 200 keV it beats the charge
  centroid in a few seconds, and on 280,000 it reaches the paper's 0.46 px
  (``docs/learn.md``).
- ``paper``: the MÖNCH paper's network and optimiser (Xie et al., section 3.2): seven
  3 x 3 convolutions of 64 channels, SGD with lr 0.001, momentum 0.9, weight decay
  0.0001, batch 128, 100 epochs, label noise 1.0 (the paper gives no unit; pixels here),
  extra pixel noise 0.18 keV. The paper trained it for 9 hours on a GPU; on a CPU, SGD
  at lr 0.001 does not leave the starting point in any affordable number of epochs
  (the loss stays at the spread of the labels), so it is not the default.

A setting given explicitly (a :class:`~dedkit.learn.train.TrainConfig` field or a
command-line option) replaces the recipe's.
"""

from __future__ import annotations

__all__ = ["DEFAULT_RECIPE", "RECIPES", "recipe_settings"]

DEFAULT_RECIPE = "shipped"

#: Recipe name -> the TrainConfig fields it sets
RECIPES: dict[str, dict] = {
    "shipped": {
        "arch": "c16",
        "epochs": 12,
        "batch_size": 128,
        "optimizer": "adam",
        "lr": 1e-3,
        "momentum": 0.9,
        "weight_decay": 1e-4,
        "schedule": "cosine",
        "label_noise": 1.0,
        "label_noise_unit": "um",
        "pixel_noise_keV": 0.18,
    },
    "paper": {
        "arch": "paper",
        "epochs": 100,
        "batch_size": 128,
        "optimizer": "sgd",
        "lr": 1e-3,
        "momentum": 0.9,
        "weight_decay": 1e-4,
        "schedule": "constant",
        "label_noise": 1.0,
        "label_noise_unit": "px",
        "pixel_noise_keV": 0.18,
    },
}


def recipe_settings(name: str) -> dict:
    """A copy of the settings of recipe ``name``.

    Raises
    ------
    DedkitError
        An unknown recipe.
    """
    from dedkit.errors import DedkitError

    if name not in RECIPES:
        raise DedkitError(f"unknown training recipe {name!r}; use one of {', '.join(RECIPES)}")
    return dict(RECIPES[name])

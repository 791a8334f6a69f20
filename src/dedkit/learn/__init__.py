"""Deep-learning electron localisation for MÖNCH (the CNN of Xie et al., JINST 2023).

Needs PyTorch (the ``learn`` extra). Importing :mod:`dedkit.hpd` never imports torch:
the ``cnn`` localiser is registered by a lightweight factory that imports this package
only when it is built.
"""

from dedkit.learn.localizer import CnnLocalizer

__all__ = ["CnnLocalizer"]

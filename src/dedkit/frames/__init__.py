"""Operations on counting-camera frames: array in, array out (row 0 at the bottom, Y up).

- gain normalisation as ``clip norm`` does it (:mod:`~dedkit.frames.gain`):
  :func:`prepare_gain`, :func:`normalize_frame`;
- defect correction and defect maps as IMOD does them (:mod:`~dedkit.frames.defects`):
  :func:`prepare_defects`, :class:`DefectCorrector`, :func:`correct_defects`,
  :func:`defect_map`;
- SerialEM's rotation/flip values (:mod:`~dedkit.frames.rotflip`): :func:`rotflip`,
  :func:`inverse_rotflip`, :func:`compose_rotflip`;
- antialiased reduction and binning (:mod:`~dedkit.frames.reduce`): :func:`reduce_image`;
- dose weighting, Grant & Grigorieff's exposure filter (:mod:`~dedkit.frames.doseweight`):
  :func:`critical_exposure`, :class:`DoseWeights`, :func:`exposure_weights`.

The names are imported here, as :mod:`dedkit.camera` does (the kernels compile on first
use, not on import); unlike :mod:`dedkit.io`, :mod:`dedkit.hpd` and :mod:`dedkit.sim`,
whose modules pull in heavy libraries and are imported on first use, and whose public
names never repeat a module's name as :func:`rotflip` does.

Examples
--------
>>> import numpy as np
>>> from dedkit.frames import rotflip
>>> rotflip(np.array([[1, 2], [3, 4]]), 1)  # 90 degrees counter-clockwise, Y up
array([[3, 1],
       [4, 2]])
"""

from dedkit.frames.defects import (
    DefectCorrector,
    PreparedDefects,
    correct_defects,
    defect_map,
    prepare_defects,
)
from dedkit.frames.doseweight import (
    DoseWeights,
    critical_exposure,
    exposure_weights,
    voltage_factor,
)
from dedkit.frames.gain import (
    GainReference,
    NormalizedFrame,
    default_scale,
    normalize_frame,
    prepare_gain,
)
from dedkit.frames.reduce import FILTERS, antialias_reduce, bin_image, reduce_image, reduced_shape
from dedkit.frames.rotflip import compose_rotflip, inverse_rotflip, rotflip, rotflip_shape

__all__ = [
    "FILTERS",
    "DefectCorrector",
    "DoseWeights",
    "GainReference",
    "NormalizedFrame",
    "PreparedDefects",
    "antialias_reduce",
    "bin_image",
    "compose_rotflip",
    "correct_defects",
    "critical_exposure",
    "default_scale",
    "defect_map",
    "exposure_weights",
    "inverse_rotflip",
    "normalize_frame",
    "prepare_defects",
    "prepare_gain",
    "reduce_image",
    "reduced_shape",
    "rotflip",
    "rotflip_shape",
    "voltage_factor",
]

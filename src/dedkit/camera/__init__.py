"""Camera models as SerialEM drives them: Gatan K2 and K3, a generic CCD and CMOS camera.

- :mod:`dedkit.camera.models`: sizes, modes, binnings (0.5 = super-resolution, doubled
  internally), readout interval, counts per electron, timing figures; the registry
  :func:`get_camera`.
- :mod:`dedkit.camera.timing`: SerialEM's exposure / frame time / drift settling rules,
  :func:`check`.
- :mod:`dedkit.camera.capture`: the capture-time model, :func:`capture_time`.
- :mod:`dedkit.camera.coincidence`: coincidence loss of K2/K3 counting and its inverse.
- :mod:`dedkit.camera.dose`: dose rate from an image's mean and the inverse.
- :mod:`dedkit.camera.frame_dose`: the dose of each frame (``--dose`` or SerialEM's
  ``.mdoc``), :class:`FrameDoses`, :func:`frame_doses`, :func:`frame_doses_from_mdoc`.
"""

from dedkit.camera.capture import CaptureTime, capture_time
from dedkit.camera.coincidence import (
    DETECTION_EFFICIENCY,
    SEED_K2_POINTS,
    coincidence_factor,
    counted_rate,
    max_counted_rate,
    peak_true_rate,
    rate_sensitivity,
    true_rate,
)
from dedkit.camera.dose import DoseRate, DoseRateWarning, dose_rate, expected_counts
from dedkit.camera.frame_dose import FrameDoses, frame_doses, frame_doses_from_mdoc
from dedkit.camera.models import (
    CAMERAS,
    MODES,
    READ_AREAS,
    Camera,
    camera_names,
    get_camera,
    internal_binning,
    user_binning,
)
from dedkit.camera.timing import TimingCheck, Violation, check, nearest_settings

__all__ = [
    "CAMERAS",
    "DETECTION_EFFICIENCY",
    "MODES",
    "READ_AREAS",
    "SEED_K2_POINTS",
    "Camera",
    "CaptureTime",
    "DoseRate",
    "DoseRateWarning",
    "FrameDoses",
    "TimingCheck",
    "Violation",
    "camera_names",
    "capture_time",
    "check",
    "coincidence_factor",
    "counted_rate",
    "dose_rate",
    "expected_counts",
    "frame_doses",
    "frame_doses_from_mdoc",
    "get_camera",
    "internal_binning",
    "max_counted_rate",
    "nearest_settings",
    "peak_true_rate",
    "rate_sensitivity",
    "true_rate",
    "user_binning",
]

"""Image-quality metrics: Fourier ring correlation and radially averaged power spectra.

Both work on any 2D arrays (square or not) and share one ring binning
(:mod:`dedkit.metrics.rings`): frequencies in cycles per pixel, rings of equal width up to
Nyquist, reported as fractions of Nyquist.
"""

from dedkit.metrics.frc import FRCResult, frc, half_bit_threshold, mean_frc
from dedkit.metrics.rings import RingBins, ring_bins
from dedkit.metrics.spectrum import (
    RadialSpectrum,
    power_spectrum_thumbnail,
    radial_power_spectrum,
)

__all__ = [
    "FRCResult",
    "RadialSpectrum",
    "RingBins",
    "frc",
    "half_bit_threshold",
    "mean_frc",
    "power_spectrum_thumbnail",
    "radial_power_spectrum",
    "ring_bins",
]

"""Image-quality metrics: Fourier ring correlation, radially averaged power spectra, and
the SNR of lattice rings in power spectra (:mod:`dedkit.metrics.ring_snr`).

Both work on any 2D arrays (square or not) and share one ring binning
(:mod:`dedkit.metrics.rings`): frequencies in cycles per pixel, rings of equal width up to
Nyquist, reported as fractions of Nyquist.
"""

from dedkit.metrics.frc import FRCResult, frc, half_bit_threshold, mean_frc
from dedkit.metrics.ring_snr import (
    AU_111_A,
    AU_200_A,
    DoseForSNR,
    RingMeasure,
    dose_for_snr,
    dose_for_snr_detail,
    power_spectrum,
    radial_profile,
    ring_snr,
)
from dedkit.metrics.rings import RingBins, ring_bins
from dedkit.metrics.spectrum import (
    RadialSpectrum,
    power_spectrum_thumbnail,
    radial_power_spectrum,
)

__all__ = [
    "AU_111_A",
    "AU_200_A",
    "DoseForSNR",
    "FRCResult",
    "RadialSpectrum",
    "RingBins",
    "RingMeasure",
    "dose_for_snr",
    "dose_for_snr_detail",
    "frc",
    "half_bit_threshold",
    "mean_frc",
    "power_spectrum",
    "power_spectrum_thumbnail",
    "radial_power_spectrum",
    "radial_profile",
    "ring_bins",
    "ring_snr",
]

"""Simulations that produce detector data with known ground truth.

Hybrid pixel detectors (MÖNCH), one module a stage of the detector's physics:

- electron transport in the silicon with Geant4 (:mod:`~dedkit.sim.transport`, the
  ``sim`` extra): :func:`simulate_electrons`, :class:`TransportSettings`, on the sensor
  :class:`SensorGeometry` (a :mod:`dedkit.records` type, exported here too);
- charge transport to the pixels (:mod:`~dedkit.sim.charge`): :class:`ChargeModel`;
- the detector's response, noise and digitisation (:mod:`~dedkit.sim.response`):
  :class:`DetectorResponse`;
- beams and scans (:mod:`~dedkit.sim.beam`): :class:`BeamPattern`;
- whole runs and training clusters (:mod:`~dedkit.sim.runs`): :class:`SimulatedDetector`;
- validation against the published figures (:mod:`~dedkit.sim.validate`);
- a library of Geant4 tracks placed again with random rotations about the beam axis
  (:mod:`~dedkit.sim.tracks`): :class:`TrackLibrary`, :func:`library_stream`.

Counting cameras (K2/K3): raw frames with gain non-uniformity and defects
(:mod:`~dedkit.sim.counting_raw`: :func:`simulate_counting_frames`) and
super-resolution frames with localisation and coincidence loss
(:mod:`~dedkit.sim.counting_superres`: :func:`simulate_exposure`); movies of a moving
specimen with known global and local motion, for aligners
(:mod:`~dedkit.sim.movies`: :func:`simulate_movie`).

The names are imported on first use: ``import dedkit.sim`` imports neither Geant4 nor
scipy.

Examples
--------
>>> from dedkit.sim import SensorGeometry
>>> SensorGeometry().thickness_um, SensorGeometry().pitch_um
(320.0, 25.0)
"""

from dedkit._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "beam": ["BeamPattern", "drift_trajectory", "sample_arrivals"],
        "charge": ["ChargeClouds", "ChargeModel", "transport_deposits"],
        "counting_raw": ["gain_nonuniformity", "simulate_counting_frames", "specimen_image"],
        "counting_superres": ["SuperResModel", "simulate_exposure"],
        "movies": ["MovieModel", "SimulatedMovie", "movie_model", "simulate_movie"],
        "response": ["CalibrationMaps", "DetectorResponse", "make_calibration_maps"],
        "runs": ["SimulatedDetector", "iter_run_chunks", "simulate_dark_frames"],
        "specimen": [
            "Microscope",
            "SpecimenImage",
            "SpecimenSpec",
            "build_specimen",
            "ctf_value",
            "hrtem_intensity",
        ],
        "tracks": ["TrackLibrary", "library_stream", "simulate_track_library"],
        "transport": [
            "TransportSettings",
            "geant4_available",
            "iter_simulate_electrons",
            "simulate_electrons",
            "transport_electrons",
        ],
        "validate": ["ValidationReport"],
        "dedkit.records.deposits": ["ElectronDeposits"],
        "dedkit.records.sensor": ["SensorGeometry"],
    },
)

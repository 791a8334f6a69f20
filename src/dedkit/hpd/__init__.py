"""Hybrid pixel detectors (PSI's MÖNCH, Jungfrau): raw frames to localised electrons.

Array convention for detector frames: ``frame[row, column]`` with rows in the order the
detector reads them out (as slsDetector raw files and aare store them); a pixel (row r,
column c) covers ``c <= x < c + 1`` and ``r <= y < r + 1`` in pixel units, so its centre
is at (c + 0.5, r + 0.5).

The pipeline, one module a step (the names are imported on first use):

- pedestal and noise from dark frames (:mod:`~dedkit.hpd.pedestal`): :class:`Pedestal`;
- cluster finding: aare's finder, identical results (:mod:`~dedkit.hpd.finder`:
  :class:`ClusterFinder`; its fast kernels :mod:`~dedkit.hpd.finder_fast` and their plain
  reference :mod:`~dedkit.hpd.finder_reference`), or the MÖNCH paper's connected pixels
  with features and crops (:mod:`~dedkit.hpd.finder_connected`);
- gain calibration to keV (:mod:`~dedkit.hpd.calibrate`): :func:`clusters_to_kev`;
- single-electron selection (:mod:`~dedkit.hpd.select`): :func:`select_single_electrons`;
- sub-pixel localisation, centroid, eta or the CNN (:mod:`~dedkit.hpd.localize`):
  :func:`get_localizer`;
- super-resolution images (:mod:`~dedkit.hpd.image`): :func:`super_resolution_image`;
- motion correction of the events of a drifting specimen (:mod:`~dedkit.hpd.motion`):
  :func:`estimate_event_motion`, :func:`corrected_image`.

The tables that travel between the steps, :class:`ClusterTable` and :class:`EventTable`,
are :mod:`dedkit.records` types, exported here too.

Examples
--------
>>> import numpy as np
>>> from dedkit.hpd import ClusterFinder, Pedestal
>>> rng = np.random.default_rng(0)
>>> dark = rng.poisson(1000, (100, 32, 32)).astype(np.uint16)
>>> finder = ClusterFinder((32, 32), cluster_size=(3, 3), nsigma=5, window=100)
>>> finder.push_pedestal_frames(dark)
>>> frame = rng.poisson(1000, (32, 32)).astype(np.uint16)
>>> frame[10, 12] += 400
>>> clusters = finder.find_clusters(frame)
>>> len(clusters), int(clusters.x[0]), int(clusters.y[0])
(1, 12, 10)
"""

from dedkit._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "calibrate": ["apply_gain", "clusters_to_kev"],
        "finder": ["ClusterFinder"],
        "finder_connected": ["find_connected_clusters"],
        "finder_reference": ["ReferenceFinder"],
        "image": ["subpixel_response", "super_resolution_image"],
        "localize": [
            "CentroidLocalizer",
            "EtaInterpolator",
            "Localizer",
            "available_localizers",
            "get_localizer",
            "register_localizer",
        ],
        "motion": [
            "EventMotion",
            "corrected_image",
            "estimate_event_motion",
            "group_images",
            "group_of_frames",
        ],
        "pedestal": ["Pedestal", "pedestal_from_frames"],
        "select": ["select_single_electrons"],
        "dedkit.records.tables": ["FEATURE_NAMES", "ClusterTable", "EventTable"],
    },
)

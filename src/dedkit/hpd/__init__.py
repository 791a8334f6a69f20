"""Hybrid pixel detectors (PSI's MÖNCH, Jungfrau): raw frames to localised electrons.

Array convention for detector frames: ``frame[row, column]`` with rows in the order the
detector reads them out (as slsDetector raw files and aare store them); a pixel (row r,
column c) covers ``c <= x < c + 1`` and ``r <= y < r + 1`` in pixel units, so its centre
is at (c + 0.5, r + 0.5).
"""

"""The pixelated silicon sensor: its geometry, its defaults and its material.

:class:`SensorGeometry` is the sensor the detector simulation (:mod:`dedkit.sim`) tracks
electrons through and that :mod:`dedkit.io.deposits` records with the deposits. Its
defaults are written once, here (:data:`DEFAULT_THICKNESS_UM`, :data:`DEFAULT_PITCH_UM`,
:data:`DEFAULT_NX`, :data:`DEFAULT_NY`); the command-line defaults and help texts are
made from them.

Coordinates (shared by the electron transport and the detector response): the sensor
occupies ``x`` in ``[0, nx * pitch)``, ``y`` in ``[0, ny * pitch)`` and ``z`` in
``[0, thickness]``, all in micrometres. Electrons enter at the back, ``z = 0``, travelling
towards ``+z``; the holes are collected by the pixels at ``z = thickness``. Pixel
``(row r, column c)`` covers ``x`` in ``[c * pitch, (c + 1) * pitch)`` and ``y`` in
``[r * pitch, (r + 1) * pitch)``; frames are ``(ny, nx)`` arrays indexed ``[row, column]``
(the detector's readout order, as everywhere in :mod:`dedkit.hpd`).

The defaults are the MÖNCH 03 prototype of the paper (section 2.1): 25 um pitch,
320 um thick silicon, 400 x 400 pixels.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from dedkit.errors import DedkitError

#: silicon density, g/cm^3 (physics.md)
SILICON_DENSITY_G_CM3 = 2.329
#: sensor thickness of the MÖNCH 03 prototype, um (the paper, section 2.1)
DEFAULT_THICKNESS_UM = 320.0
#: pixel pitch of the MÖNCH 03 prototype, um
DEFAULT_PITCH_UM = 25.0
#: pixels of the MÖNCH 03 prototype along x (columns) and y (rows)
DEFAULT_NX = 400
DEFAULT_NY = 400

__all__ = [
    "DEFAULT_NX",
    "DEFAULT_NY",
    "DEFAULT_PITCH_UM",
    "DEFAULT_THICKNESS_UM",
    "SILICON_DENSITY_G_CM3",
    "SensorGeometry",
]


@dataclass(frozen=True)
class SensorGeometry:
    """A planar silicon sensor divided into square pixels.

    Parameters
    ----------
    thickness_um : float
        Sensor thickness (depth along ``z``), micrometres.
    pitch_um : float
        Pixel pitch, micrometres (square pixels).
    nx, ny : int
        Pixels along ``x`` (columns) and ``y`` (rows).

    Raises
    ------
    DedkitError
        A size that is not a positive finite number, a pitch larger than the sensor or
        a non-integer pixel count.
    """

    thickness_um: float = DEFAULT_THICKNESS_UM
    pitch_um: float = DEFAULT_PITCH_UM
    nx: int = DEFAULT_NX
    ny: int = DEFAULT_NY

    def __post_init__(self) -> None:
        for name in ("thickness_um", "pitch_um"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise DedkitError(f"sensor {name} must be a number, not {value!r}")
            if not math.isfinite(value) or value <= 0:
                raise DedkitError(f"sensor {name} must be positive, not {value!r}")
            object.__setattr__(self, name, float(value))
        for name in ("nx", "ny"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                if isinstance(value, (float, np.floating)) and float(value).is_integer():
                    value = int(value)
                else:
                    raise DedkitError(f"sensor {name} must be a whole number of pixels")
            if value < 1:
                raise DedkitError(f"sensor {name} must be at least 1 pixel, not {value}")
            object.__setattr__(self, name, int(value))
        if self.nx * self.ny > 100_000_000:
            raise DedkitError(f"a sensor of {self.nx} x {self.ny} pixels is too large")

    @property
    def width_um(self) -> float:
        """Extent along ``x`` (``nx * pitch``), micrometres."""
        return self.nx * self.pitch_um

    @property
    def height_um(self) -> float:
        """Extent along ``y`` (``ny * pitch``), micrometres."""
        return self.ny * self.pitch_um

    @property
    def shape(self) -> tuple[int, int]:
        """Frame shape ``(ny, nx)``."""
        return (self.ny, self.nx)

    @classmethod
    def from_size(
        cls,
        width_um: float,
        height_um: float,
        *,
        pitch_um: float = DEFAULT_PITCH_UM,
        thickness_um: float = DEFAULT_THICKNESS_UM,
    ) -> SensorGeometry:
        """A sensor of a given area, refusing a pitch larger than the sensor.

        Parameters
        ----------
        width_um, height_um : float
            Sensor extent along ``x`` and ``y``; must be whole multiples of the pitch
            (to 1e-6 relative) and not smaller than one pixel.
        pitch_um, thickness_um : float
            As for the class.
        """
        for name, value in (("width", width_um), ("height", height_um)):
            if not (isinstance(value, (int, float, np.number)) and math.isfinite(value)):
                raise DedkitError(f"sensor {name} must be a number, not {value!r}")
            if value <= 0:
                raise DedkitError(f"sensor {name} must be positive, not {value!r}")
        if not (isinstance(pitch_um, (int, float, np.number)) and pitch_um > 0):
            raise DedkitError(f"sensor pitch_um must be positive, not {pitch_um!r}")
        if pitch_um > width_um or pitch_um > height_um:
            raise DedkitError(
                f"pitch {pitch_um:g} um is larger than the sensor ({width_um:g} x {height_um:g} um)"
            )
        nx, ny = width_um / pitch_um, height_um / pitch_um
        if abs(nx - round(nx)) > 1e-6 * nx or abs(ny - round(ny)) > 1e-6 * ny:
            raise DedkitError(
                f"sensor {width_um:g} x {height_um:g} um is not a whole number of "
                f"{pitch_um:g} um pixels"
            )
        return cls(thickness_um=thickness_um, pitch_um=pitch_um, nx=round(nx), ny=round(ny))

    @classmethod
    def from_options(
        cls,
        *,
        thickness_um: float = DEFAULT_THICKNESS_UM,
        pitch_um: float = DEFAULT_PITCH_UM,
        nx: int | None = None,
        ny: int | None = None,
        area_um: tuple[float, float] | None = None,
    ) -> SensorGeometry:
        """The sensor of the command-line options: ``nx`` x ``ny`` pixels (each the
        class's default when not given) or an area ``(width, height)`` in um (refused
        when the pitch is larger than the sensor, see :meth:`from_size`).

        Examples
        --------
        >>> SensorGeometry.from_options(nx=40).shape
        (400, 40)
        >>> SensorGeometry.from_options(pitch_um=50.0, area_um=(1000.0, 500.0)).shape
        (10, 20)
        """
        if area_um is not None:
            if nx is not None or ny is not None:
                raise DedkitError("give the sensor size in pixels or in um, not both")
            return cls.from_size(
                area_um[0], area_um[1], pitch_um=pitch_um, thickness_um=thickness_um
            )
        return cls(
            thickness_um=thickness_um,
            pitch_um=pitch_um,
            nx=DEFAULT_NX if nx is None else nx,
            ny=DEFAULT_NY if ny is None else ny,
        )

    def contains(self, x_um, y_um, z_um) -> np.ndarray:
        """Whether points lie inside the sensor volume (faces included at ``z``)."""
        x, y, z = (np.asarray(v, np.float64) for v in (x_um, y_um, z_um))
        return (
            (x >= 0)
            & (x < self.width_um)
            & (y >= 0)
            & (y < self.height_um)
            & (z >= 0)
            & (z <= self.thickness_um)
        )

    def pixel_of(self, x_um, y_um) -> tuple[np.ndarray, np.ndarray]:
        """Pixel ``(row, column)`` under points on the sensor (``-1`` outside)."""
        x, y = np.asarray(x_um, np.float64), np.asarray(y_um, np.float64)
        col = np.floor(x / self.pitch_um).astype(np.int64)
        row = np.floor(y / self.pitch_um).astype(np.int64)
        outside = (col < 0) | (col >= self.nx) | (row < 0) | (row >= self.ny)
        return np.where(outside, -1, row), np.where(outside, -1, col)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SensorGeometry:
        """Inverse of :meth:`to_dict` (unknown keys are refused)."""
        unknown = set(d) - {"thickness_um", "pitch_um", "nx", "ny"}
        if unknown:
            raise DedkitError(f"unknown sensor geometry keys: {', '.join(sorted(unknown))}")
        return cls(**d)

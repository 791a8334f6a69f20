"""Camera models: sizes, modes, binnings, readout, counts per electron, timing figures.

One frozen dataclass, :class:`Camera`, describes a camera; :func:`get_camera` looks one up
by name (case-insensitive) in the registry :data:`CAMERAS`: ``K2``, ``K3``, ``CCD`` (a
generic slow-scan CCD) and ``CMOS`` (a generic CMOS camera without electron counting).

Where the figures come from
---------------------------
The SerialEM manual page on image acquisition (the seed, ``/work/shared/seeds/000_*``)
gives: the K2/K3 sensor and super-resolution sizes, the readout intervals (2.5 ms K2,
0.666 ms K3), the exposure steps (K2 0.1 s linear/counting, 0.5 s super-resolution; K3
0.013 s linear, 0.011 s counting), the dose-fractionation minimum (0.025 s K2, 0.013 s
K3), the 32 counts per detected electron of K3 counting images, the readout-rate ratio
3.75 of K3 to K2, the efficient dose-rate ranges (K2 2-10, K3 ~7-40 e/physical pixel/s),
the shot overheads (K2 ~3 s linear/counting, ~6 s super-resolution plus >= 1.3 s to
return the 7.6K image; K3 ~2 s), the dose-fractionation penalty of K2 (4 s counting,
5.5 s super-resolution), the dark-reference times of K2 (~2 s plus the exposure in
linear mode, ~0.6 s in counting modes), 0.1 s per frame for reducing saved
super-resolution frames, and for CCDs: 12 s to read 2K x 2K through one port, clear
times 0.7-0.9 s (2K Megascan).

SerialEM's source (``CameraController.cpp``) gives the exact forms the seed rounds: the
K3 readout interval is 0.000665779 s and its exposure steps are 20 readouts (0.013316 s,
linear) and 16 readouts (0.010652 s, counting); the K3 minimum frame time is 20 readouts;
K3 counting is 32 counts per electron and K3 linear counts are divided by 350
(``linear2CountingRatio``) to match; K2 count scaling falls back to 30 when no
counts-per-electron property is set. Every timing step is therefore kept here as a whole
number of readout intervals.

Figures neither gives are dedkit's documented defaults (fields of :class:`Camera`, so a
caller can replace them with :func:`dataclasses.replace`): the generic CCD's and CMOS
camera's sizes and timings, the K3 dose-fractionation overhead (the seed only says "much
less" than K2's), the K2 linear-mode dose-fractionation overhead (taken as counting's),
and the split of CCD readout time between lines and pixels.

Binning convention
------------------
Binnings are the ones the user sees: for K2/K3, 1 is a sensor-sized image and 0.5 a
super-resolution image. SerialEM treats both cameras internally at super-resolution size
with doubled binnings (:func:`internal_binning`); an image pixel at user binning ``b``
covers ``b * b`` physical pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from dedkit.errors import DedkitError

__all__ = [
    "CAMERAS",
    "MODES",
    "READ_AREAS",
    "Camera",
    "camera_names",
    "get_camera",
    "internal_binning",
    "user_binning",
]

#: acquisition modes (K3 has only linear and counting: its counting images are
#: super-resolution intrinsically, "binning 0.5")
MODES = ("linear", "counting", "superres")

#: SerialEM's Camera Setup areas as (width fraction, height fraction) divisors
READ_AREAS = {
    "full": (1, 1),
    "half": (2, 2),
    "quarter": (4, 4),
    "wide-half": (1, 2),
    "wide-quarter": (2, 4),
}


@dataclass(frozen=True)
class Camera:
    """One camera model.

    Attributes
    ----------
    name : str
        Registry name (``K2``, ``K3``, ``CCD``, ``CMOS``).
    description : str
        One line for listings.
    kind : str
        ``"counting"`` (K2/K3: direct detector with electron counting), ``"ccd"`` or
        ``"cmos"``.
    sensor_size : tuple of int
        (nx, ny) physical pixels.
    super_resolution_factor : int
        Super-resolution pixels per physical pixel along each axis (2 for K2/K3, else 1).
    modes : tuple of str
        Modes the camera offers, from :data:`MODES`.
    binnings : tuple of float
        User-facing binnings (0.5 = super-resolution).
    doubled_binnings : bool
        SerialEM handles the camera at super-resolution size with doubled binnings.
    readout_interval : float or None
        Seconds per sensor readout (frame); every time must be a multiple of it. None for
        a CCD, which integrates on the chip and has no frame clock.
    exposure_steps : tuple of (str, int)
        Per mode, the step (in readout intervals) an exposure must be a multiple of
        outside dose fractionation.
    min_frame_readouts : int
        Shortest dose-fractionation frame, in readout intervals.
    max_frame_time : float
        Longest frame time SerialEM accepts (s).
    counts_per_electron : tuple of (str, float)
        Per mode, image counts per electron as SerialEM receives the image. For counting
        modes this is per *counted* electron; for linear mode per incident electron.
    linear_scaling : float
        Factor SerialEM applies to the camera's raw linear-mode counts (K3: 1/350 so that
        linear images match counting's 32 counts per electron; 1 for the others).
    counting_rate_scale : float or None
        Dose-rate scale of the coincidence-loss curve relative to the K2 (K3: 3.75, the
        ratio of readout rates); None for a camera that does not count.
    efficient_rate_range : tuple of float or None
        Dose rates (true e/physical pixel/s) where counting works well.
    shot_overhead : tuple of (str, float)
        K2/K3: fixed seconds per shot beyond the exposure, per mode. CMOS: per shot.
    superres_transfer_time : float
        Seconds to return a full super-resolution image to SerialEM (scaled by the
        fraction of those pixels actually returned).
    dose_frac_overhead : tuple of (str, float)
        Extra seconds per shot in dose-fractionation mode, per mode.
    dark_reference_time : tuple of (str, float)
        Seconds to take a new dark reference, per mode (plus the exposure time when
        ``dark_reference_plus_exposure`` names the mode).
    dark_reference_plus_exposure : tuple of str
        Modes whose dark reference also takes the exposure time.
    frame_reduction_time : float
        Seconds per saved frame to reduce super-resolution frames by 2.
    clear_time : float
        CCD: seconds to clear the chip (drift settling below this is free).
    line_time : float
        CCD: seconds per (binned) line shifted out and read.
    pixel_time : float
        CCD: seconds per (binned) pixel digitised. CMOS: seconds per pixel transferred.
    processing_time : float
        Seconds to process and display an image.
    """

    name: str
    description: str
    kind: str
    sensor_size: tuple[int, int]
    modes: tuple[str, ...]
    binnings: tuple[float, ...]
    super_resolution_factor: int = 1
    doubled_binnings: bool = False
    readout_interval: float | None = None
    exposure_steps: tuple[tuple[str, int], ...] = ()
    min_frame_readouts: int = 1
    max_frame_time: float = 10.0
    counts_per_electron: tuple[tuple[str, float], ...] = ()
    linear_scaling: float = 1.0
    counting_rate_scale: float | None = None
    efficient_rate_range: tuple[float, float] | None = None
    shot_overhead: tuple[tuple[str, float], ...] = ()
    superres_transfer_time: float = 0.0
    dose_frac_overhead: tuple[tuple[str, float], ...] = ()
    dark_reference_time: tuple[tuple[str, float], ...] = ()
    dark_reference_plus_exposure: tuple[str, ...] = ()
    frame_reduction_time: float = 0.0
    clear_time: float = 0.0
    line_time: float = 0.0
    pixel_time: float = 0.0
    processing_time: float = 0.0

    # ----- derived ---------------------------------------------------------------------
    @property
    def counts(self) -> bool:
        """Whether the camera has an electron-counting mode."""
        return self.counting_rate_scale is not None

    @property
    def super_resolution_size(self) -> tuple[int, int]:
        """(nx, ny) in super-resolution pixels (the sensor size for non-counting cameras)."""
        f = self.super_resolution_factor
        return self.sensor_size[0] * f, self.sensor_size[1] * f

    @property
    def min_frame_time(self) -> float | None:
        """Shortest dose-fractionation frame time (s), None without a readout clock."""
        if self.readout_interval is None:
            return None
        return self.min_frame_readouts * self.readout_interval

    def to_dict(self) -> dict:
        """The model as plain data (per-mode tables as dicts), with derived sizes."""
        d = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple) and value and isinstance(value[0], tuple):
                value = dict(value)
            elif isinstance(value, tuple):
                value = list(value)
            d[f.name] = value
        d["super_resolution_size"] = list(self.super_resolution_size)
        d["min_frame_time"] = self.min_frame_time
        d["exposure_step_seconds"] = {m: self.exposure_step(m) for m in self.modes}
        return d

    def text(self) -> str:
        """A few lines for ``dedkit camera info``."""
        nx, ny = self.sensor_size
        lines = [f"{self.name}: {self.description}", f"  sensor {nx} x {ny} physical pixels"]
        if self.super_resolution_factor > 1:
            sx, sy = self.super_resolution_size
            lines.append(f"  super-resolution {sx} x {sy} (binning 0.5)")
        lines.append(
            f"  modes {', '.join(self.modes)}; binnings "
            + ", ".join(f"{b:g}" for b in self.binnings)
        )
        if self.readout_interval is not None:
            steps = ", ".join(f"{m} {self.exposure_step(m):.6g} s" for m in self.modes)
            lines.append(
                f"  readout interval {self.readout_interval * 1000:.6g} ms; exposure steps "
                f"{steps}; minimum frame time {self.min_frame_time:.6g} s"
            )
        cpe = ", ".join(f"{m} {v:g}" for m, v in self.counts_per_electron)
        lines.append(f"  counts per electron: {cpe}")
        if self.efficient_rate_range is not None:
            lo, hi = self.efficient_rate_range
            lines.append(
                f"  efficient counting {lo:g}-{hi:g} e/physical pixel/s; coincidence curve "
                f"at {self.counting_rate_scale:g}x the K2's dose rate"
            )
        return "\n".join(lines)

    def check_mode(self, mode: str) -> str:
        """``mode`` lower-cased if the camera offers it, else a :class:`DedkitError`."""
        m = str(mode).lower()
        if m not in self.modes:
            hint = ""
            if self.name == "K3" and m == "superres":
                hint = (
                    " (the K3 has no separate super-resolution mode: counting images are "
                    "super-resolution, binning 0.5)"
                )
            raise DedkitError(
                f"the {self.name} has no {mode!r} mode (modes: {', '.join(self.modes)}){hint}"
            )
        return m

    def check_binning(self, binning: float, mode: str) -> float:
        """``binning`` as a float if the camera offers it in ``mode``, else an error."""
        mode = self.check_mode(mode)
        try:
            b = float(binning)
        except (TypeError, ValueError):
            raise DedkitError(f"binning {binning!r} is not a number") from None
        allowed = self.binnings_for(mode)
        if b not in allowed:
            raise DedkitError(
                f"binning {binning:g} is not available on the {self.name} in {mode} mode "
                f"(binnings: {', '.join(f'{a:g}' for a in allowed)})"
            )
        return b

    def binnings_for(self, mode: str) -> tuple[float, ...]:
        """User binnings available in ``mode``: 0.5 only where super-resolution images
        exist (K2 super-resolution mode, K3 counting mode)."""
        mode = self.check_mode(mode)
        superres = self.super_resolution_factor > 1 and (
            mode == "superres" or (mode == "counting" and "superres" not in self.modes)
        )
        return tuple(b for b in self.binnings if b >= 1 or superres)

    def exposure_step(self, mode: str) -> float | None:
        """Seconds an exposure must be a multiple of outside dose fractionation."""
        mode = self.check_mode(mode)
        if self.readout_interval is None:
            return None
        steps = dict(self.exposure_steps)
        return steps.get(mode, 1) * self.readout_interval

    def counts_per_electron_in(self, mode: str) -> float:
        """Image counts per electron in ``mode`` (see ``counts_per_electron``)."""
        mode = self.check_mode(mode)
        return dict(self.counts_per_electron)[mode]

    def value_for(self, table: tuple[tuple[str, float], ...], mode: str) -> float:
        """A per-mode figure (0 when the table does not name the mode)."""
        return dict(table).get(self.check_mode(mode), 0.0)


def internal_binning(camera: Camera, binning: float) -> int:
    """SerialEM's internal binning: doubled for K2/K3 (0.5 -> 1, 1 -> 2, ...)."""
    b = float(binning) * (2 if camera.doubled_binnings else 1)
    if b < 1 or b != int(b):
        raise DedkitError(f"binning {binning:g} has no internal equivalent on the {camera.name}")
    return int(b)


def user_binning(camera: Camera, internal: int) -> float:
    """The user-facing binning for SerialEM's internal one (inverse of
    :func:`internal_binning`)."""
    if int(internal) != internal or internal < 1:
        raise DedkitError(f"internal binning {internal!r} is not a positive whole number")
    return internal / 2 if camera.doubled_binnings else float(internal)


K2_READOUT = 0.0025
#: SerialEM CameraController.cpp (mK3ReadoutInterval); the seed rounds it to 0.666 ms
K3_READOUT = 0.000665779

K2 = Camera(
    name="K2",
    description="Gatan K2: 3838 x 3710 sensor, 7676 x 7420 super-resolution, 400 frames/s",
    kind="counting",
    sensor_size=(3838, 3710),
    super_resolution_factor=2,
    modes=("linear", "counting", "superres"),
    binnings=(0.5, 1, 2, 4, 8),
    doubled_binnings=True,
    readout_interval=K2_READOUT,
    # 0.1 s = 40 readouts (linear, counting), 0.5 s = 200 readouts (super-resolution)
    exposure_steps=(("linear", 40), ("counting", 40), ("superres", 200)),
    min_frame_readouts=10,  # 0.025 s
    # the plugin scales counted electrons up to about linear mode's counts per electron;
    # 30 is SerialEM's fallback when the camera property is not set
    counts_per_electron=(("linear", 30.0), ("counting", 30.0), ("superres", 30.0)),
    linear_scaling=1.0,
    counting_rate_scale=1.0,
    efficient_rate_range=(2.0, 10.0),
    shot_overhead=(("linear", 3.0), ("counting", 3.0), ("superres", 6.0)),
    superres_transfer_time=1.3,
    # seed: counting 4 s, super-resolution 5.5 s; linear taken as counting's (dedkit)
    dose_frac_overhead=(("linear", 4.0), ("counting", 4.0), ("superres", 5.5)),
    dark_reference_time=(("linear", 2.0), ("counting", 0.6), ("superres", 0.6)),
    dark_reference_plus_exposure=("linear",),
    frame_reduction_time=0.1,
    processing_time=0.0,
)

K3 = Camera(
    name="K3",
    description="Gatan K3: 5760 x 4092 sensor, 11520 x 8184 super-resolution, 1500 frames/s",
    kind="counting",
    sensor_size=(5760, 4092),
    super_resolution_factor=2,
    modes=("linear", "counting"),
    binnings=(0.5, 1, 2, 4, 8),
    doubled_binnings=True,
    readout_interval=K3_READOUT,
    # 20 readouts = 0.013316 s (seed: 0.013), 16 readouts = 0.010652 s (seed: 0.011)
    exposure_steps=(("linear", 20), ("counting", 16)),
    min_frame_readouts=20,  # 0.013316 s (seed: 0.013)
    counts_per_electron=(("linear", 32.0), ("counting", 32.0)),
    linear_scaling=1.0 / 350.0,
    counting_rate_scale=3.75,
    efficient_rate_range=(7.0, 40.0),
    shot_overhead=(("linear", 2.0), ("counting", 2.0)),
    superres_transfer_time=0.0,  # seed: "no penalty for getting the super-resolution images"
    # seed: "much less" than the K2's 4 s; 0.5 s is dedkit's default
    dose_frac_overhead=(("linear", 0.5), ("counting", 0.5)),
    # seed: a dark reference is taken with every K3 shot, inside the shot overhead
    dark_reference_time=(),
    frame_reduction_time=0.1,
    processing_time=0.0,
)

CCD = Camera(
    name="CCD",
    description="generic slow-scan CCD: 2048 x 2048, one readout port (Megascan-like)",
    kind="ccd",
    sensor_size=(2048, 2048),
    modes=("linear",),
    binnings=(1, 2, 4, 8),
    readout_interval=None,
    counts_per_electron=(("linear", 1.0),),
    clear_time=0.8,  # seed: 0.7 to 0.9 s for a 2K Megascan
    # 12 s for the full 2K x 2K through one port (seed); split so that a line costs as
    # much as 3072 pixels, which makes Wide Half read 1.25x as long as Half ("only
    # somewhat longer ... not twice as long", seed): dedkit's choice
    line_time=3072 * 12.0 / (2048 * 3072 + 2048 * 2048),
    pixel_time=12.0 / (2048 * 3072 + 2048 * 2048),
    processing_time=0.1,
)

CMOS = Camera(
    name="CMOS",
    description="generic CMOS camera: 4096 x 4096, 25 frames/s, read during the exposure",
    kind="cmos",
    sensor_size=(4096, 4096),
    modes=("linear",),
    binnings=(1, 2, 4, 8),
    readout_interval=0.04,  # 25 frames/s (OneView-like; dedkit's default)
    exposure_steps=(("linear", 1),),
    min_frame_readouts=1,
    counts_per_electron=(("linear", 1.0),),
    shot_overhead=(("linear", 0.5),),
    pixel_time=2e-9,  # moving data in software: 0.034 s for 4K x 4K (dedkit's default)
    processing_time=0.1,
)

#: registry by upper-case name
CAMERAS: dict[str, Camera] = {c.name: c for c in (K2, K3, CCD, CMOS)}


def camera_names() -> tuple[str, ...]:
    """Names in the registry."""
    return tuple(CAMERAS)


def get_camera(camera: str | Camera) -> Camera:
    """The :class:`Camera` named ``camera`` (case-insensitive), or ``camera`` itself.

    Raises
    ------
    DedkitError
        For a name not in the registry.
    """
    if isinstance(camera, Camera):
        return camera
    try:
        return CAMERAS[str(camera).upper()]
    except KeyError:
        raise DedkitError(
            f"unknown camera {camera!r} (cameras: {', '.join(camera_names())})"
        ) from None

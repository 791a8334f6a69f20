"""How long one image takes to capture, term by term.

CCD (seed): the total is drift settling beyond the clear time (settling shorter than the
clear time is subsumed in it), the clear time, the exposure, the readout and the
processing. Readout is dominated by the number of lines read, so dedkit models it as
``lines * line_time + pixels * pixel_time`` with binning done on the chip before readout
(``lines = area height / binning``); SerialEM's Wide Half (full width, half height) and
Wide Quarter (half width, quarter height) areas read as many lines as Half and Quarter.

K2/K3 (seed): timing is mostly independent of binning: a fixed overhead per shot and mode
(K2 ~3 s linear/counting, ~6 s super-resolution; K3 ~2 s) plus the exposure; a K2
super-resolution image also needs >= 1.3 s to reach SerialEM (scaled here by the pixels
returned: an image reduced by 2 carries a quarter of them); drift settling lengthens the
exposure (the first frames are discarded); dose fractionation costs 4 s (counting) or
5.5 s (super-resolution) more on a K2; a new K2 dark reference costs ~2 s plus the
exposure in linear mode or ~0.6 s in counting modes (the K3 takes one with every shot);
saving super-resolution frames reduced by 2 costs ~0.1 s a frame.

CMOS (seed): readout happens during the exposure, so only a shot overhead, the transfer
of the pixels read and processing are added. The figures the seed does not give are
fields of the camera model (:mod:`dedkit.camera.models`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from dedkit.camera.models import READ_AREAS, Camera, get_camera
from dedkit.errors import DedkitError

__all__ = ["CaptureTime", "capture_time"]

#: the terms of :class:`CaptureTime`, in the order they happen
TERMS = (
    "settling",
    "clear",
    "dark_reference",
    "exposure",
    "readout",
    "overhead",
    "dose_fractionation",
    "frame_reduction",
    "transfer",
    "processing",
)


@dataclass(frozen=True)
class CaptureTime:
    """Seconds one capture takes, by term (0 where a term does not apply).

    Attributes
    ----------
    camera, mode, area : str
        What was modelled.
    binning : float
        User binning.
    image_size : tuple of int
        (nx, ny) of the image returned.
    settling : float
        Drift settling that adds time (CCD: only the part beyond the clear time).
    clear : float
        CCD chip clearing.
    dark_reference : float
        A new dark reference (K2, when asked for).
    exposure : float
        The exposure itself.
    readout : float
        CCD readout of the lines and pixels of the area.
    overhead : float
        K2/K3 and CMOS fixed time per shot in this mode.
    dose_fractionation : float
        Extra time of dose-fractionation mode.
    frame_reduction : float
        Reducing saved super-resolution frames by 2.
    transfer : float
        Returning the image to SerialEM (K2 super-resolution, CMOS).
    processing : float
        Processing and display.
    """

    camera: str
    mode: str
    binning: float
    area: str
    image_size: tuple[int, int]
    settling: float = 0.0
    clear: float = 0.0
    dark_reference: float = 0.0
    exposure: float = 0.0
    readout: float = 0.0
    overhead: float = 0.0
    dose_fractionation: float = 0.0
    frame_reduction: float = 0.0
    transfer: float = 0.0
    processing: float = 0.0

    @property
    def total(self) -> float:
        return float(sum(getattr(self, t) for t in TERMS))

    def terms(self) -> dict[str, float]:
        """The non-zero terms in order."""
        return {t: getattr(self, t) for t in TERMS if getattr(self, t)}

    def to_dict(self) -> dict:
        d = asdict(self)
        d["image_size"] = list(self.image_size)
        d["total"] = self.total
        return d

    def text(self) -> str:
        nx, ny = self.image_size
        lines = [
            f"{self.camera} {self.mode}, binning {self.binning:g}, {self.area} area "
            f"({nx} x {ny}): {self.total:.3f} s"
        ]
        for name, value in self.terms().items():
            lines.append(f"  {name.replace('_', ' '):19s} {value:8.3f} s")
        return "\n".join(lines)


def _area_size(cam: Camera, area: str, binning: float) -> tuple[int, int, int, int]:
    """(width, height) of the area on the sensor in physical pixels and (nx, ny) of the
    image returned at ``binning``."""
    try:
        fx, fy = READ_AREAS[area]
    except KeyError:
        raise DedkitError(f"unknown area {area!r} (areas: {', '.join(READ_AREAS)})") from None
    width, height = cam.sensor_size[0] // fx, cam.sensor_size[1] // fy
    return width, height, int(width / binning), int(height / binning)


def capture_time(
    camera: str | Camera,
    mode: str,
    exposure: float,
    *,
    binning: float = 1,
    area: str = "full",
    settling: float = 0.0,
    dose_fractionation: bool = False,
    frame_time: float | None = None,
    new_dark_reference: bool = False,
    reduce_saved_frames: bool = False,
) -> CaptureTime:
    """Model the time of one capture.

    Parameters
    ----------
    camera : str or Camera
        ``K2``, ``K3``, ``CCD``, ``CMOS`` or a camera model.
    mode : str
        ``linear``, ``counting`` or ``superres`` (as the camera offers).
    exposure : float
        Exposure time (s), > 0.
    binning : float
        User binning (0.5 = super-resolution on K2/K3).
    area : str
        ``full``, ``half``, ``quarter``, ``wide-half`` or ``wide-quarter``.
    settling : float
        Drift settling (s), >= 0.
    dose_fractionation : bool
        Dose-fractionation mode (K2/K3, CMOS).
    frame_time : float, optional
        Frame time (s); needed with ``reduce_saved_frames``.
    new_dark_reference : bool
        The shot needs a new dark reference (K2: new exposure time for a mode/binning).
    reduce_saved_frames : bool
        Saved super-resolution frames are reduced by 2 (needs dose fractionation).

    Returns
    -------
    CaptureTime
        The breakdown; ``.total`` is the sum.
    """
    cam = get_camera(camera)
    mode = cam.check_mode(mode)
    b = cam.check_binning(binning, mode)
    if not (math.isfinite(exposure) and exposure > 0):
        raise DedkitError(f"exposure must be a positive number of seconds (got {exposure:g})")
    if not (math.isfinite(settling) and settling >= 0):
        raise DedkitError(f"drift settling must be 0 or more seconds (got {settling:g})")
    if dose_fractionation and cam.kind == "ccd":
        raise DedkitError(f"the {cam.name} has no dose-fractionation mode")
    if frame_time is not None and not dose_fractionation:
        raise DedkitError("a frame time only applies with dose fractionation")
    if frame_time is not None and not (math.isfinite(frame_time) and frame_time > 0):
        raise DedkitError(f"frame time must be a positive number of seconds (got {frame_time:g})")
    width, height, nx, ny = _area_size(cam, area, b)
    terms: dict[str, float] = {"exposure": float(exposure)}

    if cam.kind == "ccd":
        terms["clear"] = cam.clear_time
        terms["settling"] = max(settling - cam.clear_time, 0.0)
        # on-chip binning: each binned line is shifted out and read once
        terms["readout"] = ny * cam.line_time + nx * ny * cam.pixel_time
        terms["processing"] = cam.processing_time
    else:
        terms["settling"] = settling
        terms["overhead"] = cam.value_for(cam.shot_overhead, mode)
        if dose_fractionation:
            terms["dose_fractionation"] = cam.value_for(cam.dose_frac_overhead, mode)
        if new_dark_reference and cam.dark_reference_time:
            terms["dark_reference"] = cam.value_for(cam.dark_reference_time, mode) + (
                exposure if mode in cam.dark_reference_plus_exposure else 0.0
            )
        if reduce_saved_frames:
            if not dose_fractionation or frame_time is None:
                raise DedkitError("reducing saved frames needs dose fractionation and a frame time")
            if 0.5 not in cam.binnings_for(mode):
                raise DedkitError(f"the {cam.name} has no super-resolution frames in {mode} mode")
            frames = max(1, round(exposure / frame_time))
            terms["frame_reduction"] = frames * cam.frame_reduction_time
        if cam.kind == "counting":
            if mode == "superres":
                full = cam.super_resolution_size[0] * cam.super_resolution_size[1]
                terms["transfer"] = cam.superres_transfer_time * nx * ny / full
        else:
            terms["transfer"] = nx * ny * cam.pixel_time
        terms["processing"] = cam.processing_time
    return CaptureTime(
        camera=cam.name, mode=mode, binning=b, area=area, image_size=(nx, ny), **terms
    )

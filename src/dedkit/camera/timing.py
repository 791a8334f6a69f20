"""SerialEM's constraints on K2/K3 (and CMOS) exposure timing, checked.

The seed lists the rules SerialEM enforces in the Camera Setup dialog:

1. All times (exposure, drift settling, frame time in dose fractionation) must be
   multiples of the readout interval, 2.5 ms for K2 and 0.666 ms for K3.
2. Without dose fractionation the K2 exposure must be a multiple of 0.1 s in linear or
   counting mode and of 0.5 s in super-resolution mode; the K3 exposure a multiple of
   0.013 s in linear mode or 0.011 s in counting mode.
3. With dose fractionation the exposure must be a multiple of the frame time, and at least
   0.025 s for K2 or 0.013 s for K3.

dedkit checks the exact values behind the seed's rounded ones (SerialEM's
``CameraController.cpp``): the K3 readout interval is 0.665779 ms, its exposure steps are
20 and 16 readouts (0.013316 s, 0.010652 s) and its minimum frame time 20 readouts; the
minimum of rule 3 applies to the frame time (the exposure is at least one frame). Frame
times above 10 s are refused as SerialEM clamps them. A time is taken as a multiple when
it is within 1e-5 s of one, SerialEM's own tolerance.

The rule ids are ``R1-exposure``, ``R1-frame-time``, ``R1-settling``,
``R2-exposure-step``, ``R3-frame-multiple``, ``R3-min-frame-time`` and
``R3-max-frame-time``. A CCD has no frame clock: only the input checks apply to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from dedkit.camera.models import Camera, get_camera
from dedkit.errors import DedkitError

__all__ = ["TOLERANCE", "TimingCheck", "Violation", "check", "nearest_settings"]

#: seconds within which a time counts as a multiple of a step (SerialEM's tolerance)
TOLERANCE = 1e-5


@dataclass(frozen=True)
class Violation:
    """One broken rule.

    Attributes
    ----------
    rule : str
        Rule id (``R1-exposure``, ``R2-exposure-step``, ...); the digit is the seed's rule.
    setting : str
        ``exposure``, ``frame_time`` or ``settling``.
    value : float
        The value given (s).
    message : str
        What is wrong, on one line.
    nearest : tuple of float
        The valid values of ``setting`` just below and just above ``value`` (one value
        when only one side exists), other settings taken as corrected.
    """

    rule: str
    setting: str
    value: float
    message: str
    nearest: tuple[float, ...]

    def to_dict(self) -> dict:
        return {
            "rule": self.rule,
            "setting": self.setting,
            "value": self.value,
            "message": self.message,
            "nearest": list(self.nearest),
        }


@dataclass(frozen=True)
class TimingCheck:
    """The outcome of :func:`check`.

    Attributes
    ----------
    camera, mode : str
        What was checked.
    exposure, frame_time, settling : float or None
        The settings given (s).
    dose_fractionation : bool
        Whether dose fractionation was on.
    violations : tuple of Violation
        Every rule broken (empty when valid).
    nearest : dict
        The settings SerialEM would turn these into: each time rounded to the nearest
        valid one (``exposure``, ``frame_time``, ``settling``; None where not given).
    """

    camera: str
    mode: str
    exposure: float
    frame_time: float | None
    settling: float
    dose_fractionation: bool
    violations: tuple[Violation, ...]
    nearest: dict = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return not self.violations

    def to_dict(self) -> dict:
        return {
            "camera": self.camera,
            "mode": self.mode,
            "exposure": self.exposure,
            "frame_time": self.frame_time,
            "settling": self.settling,
            "dose_fractionation": self.dose_fractionation,
            "valid": self.valid,
            "violations": [v.to_dict() for v in self.violations],
            "nearest": dict(self.nearest),
        }

    def text(self) -> str:
        """A short human-readable report."""
        what = f"{self.camera} {self.mode}, exposure {_fmt(self.exposure)} s"
        if self.dose_fractionation:
            what += f", dose fractionation, frame time {_fmt(self.frame_time)} s"
        if self.settling:
            what += f", drift settling {_fmt(self.settling)} s"
        if self.valid:
            return f"{what}: valid"
        lines = [f"{what}: {len(self.violations)} rule(s) violated"]
        for v in self.violations:
            near = " or ".join(f"{_fmt(x)} s" for x in v.nearest)
            label = v.setting.replace("_", " ")
            lines.append(f"  {v.rule}: {v.message}; nearest valid {label}: {near}")
        shown = {k: x for k, x in self.nearest.items() if x is not None}
        if not self.settling:
            shown.pop("settling", None)  # none asked for, none suggested
        parts = [f"{k.replace('_', ' ')} {_fmt(x)} s" for k, x in shown.items()]
        lines.append("  nearest valid settings: " + ", ".join(parts))
        return "\n".join(lines)


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.6g}"


def _clean(x: float) -> float:
    # multiples computed in binary floating point: 3 * 0.1 -> 0.3, not 0.30000000000000004
    return round(x, 9)


def _is_multiple(value: float, step: float) -> bool:
    n = round(value / step)
    return n >= 1 and abs(value - n * step) <= TOLERANCE


def _neighbours(value: float, step: float, lowest: float) -> tuple[float, ...]:
    """Multiples of ``step`` just below and above ``value``, none below ``lowest``."""
    n = value / step
    below = math.floor(n + 1e-9) * step
    above = math.ceil(n - 1e-9) * step
    out = []
    if below >= lowest - TOLERANCE and abs(below - value) > TOLERANCE:
        out.append(_clean(below))
    if abs(above - value) > TOLERANCE:
        out.append(_clean(max(above, lowest)))
    if not out:  # value is itself a multiple (shown when another rule is broken)
        out.append(_clean(max(round(n) * step, lowest)))
    return tuple(dict.fromkeys(out))


def _round_to(value: float, step: float, lowest_steps: int = 1) -> float:
    # SerialEM rounds to the nearest multiple, up when exactly half-way
    n = max(lowest_steps, math.floor(value / step + 0.5 + 1e-5))
    return _clean(n * step)


def _validated(camera, mode, exposure, frame_time, settling, dose_fractionation):
    cam = get_camera(camera)
    mode = cam.check_mode(mode)
    for name, value in (("exposure", exposure), ("frame time", frame_time)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise DedkitError(f"{name} must be a positive number of seconds (got {value:g})")
    if not (math.isfinite(settling) and settling >= 0):
        raise DedkitError(f"drift settling must be 0 or more seconds (got {settling:g})")
    if dose_fractionation:
        if cam.readout_interval is None:
            raise DedkitError(f"the {cam.name} has no dose-fractionation mode")
        if frame_time is None:
            raise DedkitError("dose fractionation needs a frame time")
    elif frame_time is not None:
        raise DedkitError("a frame time only applies with dose fractionation")
    return cam, mode


def nearest_settings(
    camera: str | Camera,
    mode: str,
    exposure: float,
    *,
    frame_time: float | None = None,
    settling: float = 0.0,
    dose_fractionation: bool = False,
) -> dict:
    """The settings SerialEM would make of these: each time rounded to the nearest valid
    value (frame time first, then the exposure as a multiple of it).

    Returns
    -------
    dict
        ``exposure``, ``frame_time`` (None without dose fractionation) and ``settling``.
    """
    cam, mode = _validated(camera, mode, exposure, frame_time, settling, dose_fractionation)
    return _nearest(cam, mode, exposure, frame_time, settling, dose_fractionation)


def _nearest(cam, mode, exposure, frame_time, settling, dose_fractionation) -> dict:
    tick = cam.readout_interval
    if tick is None:
        return {"exposure": exposure, "frame_time": None, "settling": settling}
    out = {"exposure": None, "frame_time": None, "settling": _round_to(settling, tick, 0)}
    if dose_fractionation:
        frame = _round_to(frame_time, tick)
        frame = min(max(frame, cam.min_frame_time), cam.max_frame_time)
        out["frame_time"] = _clean(frame)
        out["exposure"] = _round_to(exposure, frame)
    else:
        out["exposure"] = _round_to(exposure, cam.exposure_step(mode))
    return out


def check(
    camera: str | Camera,
    mode: str,
    exposure: float,
    *,
    frame_time: float | None = None,
    settling: float = 0.0,
    dose_fractionation: bool = False,
) -> TimingCheck:
    """Check exposure, frame time and drift settling against SerialEM's rules.

    Parameters
    ----------
    camera : str or Camera
        ``K2``, ``K3``, ``CCD``, ``CMOS`` (case-insensitive) or a camera model.
    mode : str
        ``linear``, ``counting`` or ``superres`` (K2 only).
    exposure : float
        Exposure time (s), > 0.
    frame_time : float, optional
        Frame time (s) in dose-fractionation mode; required with it, refused without.
    settling : float
        Drift settling (s), >= 0; 0 for none.
    dose_fractionation : bool
        Dose-fractionation mode.

    Returns
    -------
    TimingCheck
        Every violated rule with the nearest valid values, and the nearest valid settings.

    Raises
    ------
    DedkitError
        Unusable input: unknown camera or mode, a time <= 0 (settling < 0), a frame time
        without dose fractionation or dose fractionation without one, dose fractionation
        on a CCD.
    """
    cam, mode = _validated(camera, mode, exposure, frame_time, settling, dose_fractionation)
    nearest = _nearest(cam, mode, exposure, frame_time, settling, dose_fractionation)
    found: list[Violation] = []
    tick = cam.readout_interval
    if tick is not None:
        ms = f"{tick * 1000:.6g} ms"
        readout = f"the {cam.name}'s readout interval ({ms})"
        if not _is_multiple(exposure, tick):
            found.append(
                Violation(
                    "R1-exposure",
                    "exposure",
                    exposure,
                    f"exposure {_fmt(exposure)} s is not a multiple of {readout}",
                    _neighbours(exposure, tick, tick),
                )
            )
        if dose_fractionation and not _is_multiple(frame_time, tick):
            found.append(
                Violation(
                    "R1-frame-time",
                    "frame_time",
                    frame_time,
                    f"frame time {_fmt(frame_time)} s is not a multiple of {readout}",
                    _neighbours(frame_time, tick, cam.min_frame_time),
                )
            )
        if settling and not _is_multiple(settling, tick):
            found.append(
                Violation(
                    "R1-settling",
                    "settling",
                    settling,
                    f"drift settling {_fmt(settling)} s is not a multiple of {readout}",
                    _neighbours(settling, tick, 0.0),  # 0: no settling
                )
            )
        step = cam.exposure_step(mode)
        if not dose_fractionation and step != tick:  # a one-readout step is rule 1 again
            if not _is_multiple(exposure, step):
                found.append(
                    Violation(
                        "R2-exposure-step",
                        "exposure",
                        exposure,
                        f"without dose fractionation the {cam.name} exposure in {mode} mode "
                        f"must be a multiple of {_fmt(step)} s",
                        _neighbours(exposure, step, step),
                    )
                )
        if dose_fractionation:
            if frame_time < cam.min_frame_time - TOLERANCE:
                found.append(
                    Violation(
                        "R3-min-frame-time",
                        "frame_time",
                        frame_time,
                        f"frame time {_fmt(frame_time)} s is below the {cam.name}'s minimum "
                        f"of {_fmt(cam.min_frame_time)} s ({cam.min_frame_readouts} readouts)",
                        (_clean(cam.min_frame_time),),
                    )
                )
            if frame_time > cam.max_frame_time + TOLERANCE:
                found.append(
                    Violation(
                        "R3-max-frame-time",
                        "frame_time",
                        frame_time,
                        f"frame time {_fmt(frame_time)} s is above SerialEM's maximum of "
                        f"{_fmt(cam.max_frame_time)} s",
                        (_clean(cam.max_frame_time),),
                    )
                )
            if not _is_multiple(exposure, frame_time):
                frame = nearest["frame_time"]
                found.append(
                    Violation(
                        "R3-frame-multiple",
                        "exposure",
                        exposure,
                        f"with dose fractionation the exposure {_fmt(exposure)} s must be a "
                        f"whole number (at least 1) of frames of {_fmt(frame_time)} s",
                        _neighbours(exposure, frame, frame),
                    )
                )
    return TimingCheck(
        camera=cam.name,
        mode=mode,
        exposure=exposure,
        frame_time=frame_time,
        settling=settling,
        dose_fractionation=dose_fractionation,
        violations=tuple(found),
        nearest=nearest,
    )

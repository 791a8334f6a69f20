"""The dose of each frame of a movie, from the user (``--dose``) or SerialEM's ``.mdoc``.

What SerialEM writes (its ``MdocDefines.h`` and ``CameraController.cpp``), per section:

- ``ExposureDose``: e/Å² of the whole exposure (0 when SerialEM had no dose calibration);
- ``NumSubFrames``: the number of frames saved;
- ``FrameDosesAndNumber``: pairs ``dose count`` (e/Å² per saved frame, number of frames
  with that dose), e.g. ``0.63824 12``; several pairs when frames of different length
  were summed (variable frame doses);
- ``PriorRecordDose``: e/Å² the area received before this exposure (tilt series);
- ``PixelSpacing``: Å per pixel of the image SerialEM acquired (the sum), at its
  ``Binning`` (SerialEM's binning: 0.5 is super-resolution, 1 counting, 2 binned);
- ``Voltage`` (kV), usually a global key; ``SubFramePath``: the frame file it saved.

A frame-stack mdoc (written beside each stack) has one ``[FrameSet = 0]`` section; an
image-stack mdoc (a tilt series) has a ``[ZValue = n]`` section per image, each naming
its frames in ``SubFramePath``. SerialEM has no ``NumSubFramesSaved`` key.

Pixel size of the frames: the frames are saved at the binning of the acquisition, so
``PixelSpacing`` is the frames' pixel, except when SerialEM was told to save
super-resolution frames reduced by 2 (``SaveSuperResReduced``) or to take K3
super-resolution binned; the mdoc does not say so. Give ``frame_binning`` (SerialEM's
convention, 0.5 or 1) for the frames when it differs from the mdoc's ``Binning``:
the frames' pixel is then ``PixelSpacing * frame_binning / Binning``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

import numpy as np

from dedkit.errors import DedkitError
from dedkit.io.mdoc import Mdoc, MdocSection, read_mdoc

__all__ = ["FrameDoses", "frame_doses", "frame_doses_from_mdoc"]

#: keys that make a section describe a set of frames
_FRAME_KEYS = ("SubFramePath", "NumSubFrames", "FrameDosesAndNumber")


@dataclass(frozen=True)
class FrameDoses:
    """The dose of each frame and what goes with it.

    Attributes
    ----------
    doses : numpy.ndarray
        ``(n_frames,)`` e/Å² per frame (not cumulative).
    pixel_size : float or None
        Å per pixel of the frames as saved (unbinned movie pixels); None if unknown.
    voltage_kv : float or None
        Accelerating voltage; None if unknown.
    pre_dose : float
        e/Å² before the first frame (``PriorRecordDose``), 0 if unknown.
    source : str
        Where the doses came from: ``"--dose"`` or ``"mdoc FILE [FrameSet = 0]"``.
    binning : float or None
        The mdoc's ``Binning`` (0.5: super-resolution), None without an mdoc.

    Examples
    --------
    >>> d = frame_doses(4, dose_per_frame=1.25)
    >>> d.doses, d.total, d.dose_per_frame, d.source
    (array([1.25, 1.25, 1.25, 1.25]), 5.0, 1.25, '--dose')
    """

    doses: np.ndarray
    pixel_size: float | None
    voltage_kv: float | None
    pre_dose: float
    source: str
    binning: float | None = None

    @property
    def n_frames(self) -> int:
        return int(self.doses.size)

    @property
    def total(self) -> float:
        """e/Å² of all frames together."""
        return float(self.doses.sum())

    @property
    def dose_per_frame(self) -> float:
        """Mean e/Å² per frame (what RELION's ``rlnMicrographDoseRate`` holds)."""
        return float(self.doses.mean())

    @property
    def uniform(self) -> bool:
        """Whether every frame has the same dose (to 1e-6 relative)."""
        return bool(np.allclose(self.doses, self.doses[0], rtol=1e-6, atol=0))


def _where(mdoc: Mdoc, path) -> str | None:
    if path is not None:
        return str(path)
    return mdoc.path


def _frame_name(value: str) -> str:
    # SerialEM runs on Windows: SubFramePath is a Windows path (X:\dir\name.tif)
    return PureWindowsPath(value.strip()).name


def _matches(section: MdocSection, frames_name: str) -> bool:
    saved = section.get("SubFramePath")
    if not saved:
        return False
    saved_name = _frame_name(saved).casefold()
    wanted = Path(frames_name).name.casefold()
    if saved_name == wanted:
        return True
    # a stack converted after saving (.tif to .mrc, .mrc.bz2...) keeps its stem
    return _stem(saved_name) == _stem(wanted)


def _stem(name: str) -> str:
    return re.sub(r"(\.(mrc|mrcs|tif|tiff|eer|dm4|bz2|gz|xz|zst))+$", "", name)


def _label(section: MdocSection) -> str:
    return "global part" if section.kind is None else f"[{section.kind} = {section.value}]"


def _pick_section(mdoc: Mdoc, frames_name, where) -> MdocSection:
    framed = [s for s in mdoc.sections if any(k in s for k in _FRAME_KEYS)]
    framesets = [s for s in framed if s.kind == "FrameSet"]
    # a frame-stack mdoc describes its stack in its FrameSet section; the ZValue sections
    # a frame tilt series adds split that stack (FrameTSStartEndFrames) and are not stacks
    candidates = framesets or framed
    if not candidates:
        if mdoc.sections:
            raise DedkitError(
                "the mdoc records no frames (no section has SubFramePath, NumSubFrames or "
                "FrameDosesAndNumber): it is not the mdoc of a frame stack or of images "
                "saved with their frames",
                path=where,
            )
        return mdoc.globals
    if frames_name is not None:
        matching = [s for s in candidates if _matches(s, frames_name)]
        if len(matching) == 1:
            return matching[0]
        if len(matching) > 1:
            raise DedkitError(
                f"{len(matching)} sections of the mdoc name frames {Path(frames_name).name} "
                f"({', '.join(_label(s) for s in matching[:3])}); cannot tell which to use",
                path=where,
            )
    if len(candidates) == 1:
        # a frame-stack mdoc belongs to its stack whatever the stack is called now
        return candidates[0]
    named = f" and none names {Path(frames_name).name}" if frames_name is not None else ""
    raise DedkitError(
        f"the mdoc describes {len(candidates)} frame sets{named}; name the frames "
        "(the stack's file name is matched against SubFramePath)",
        path=where,
    )


def _value(mdoc: Mdoc, section: MdocSection, key: str, getter: str = "get_float"):
    """A number from the section, else from the global part, else None."""
    get = getattr(mdoc, getter)
    if section.kind is not None:
        value = get(key, section)
        if value is not None:
            return value
    return get(key)


def _doses_and_counts(mdoc: Mdoc, section: MdocSection, where):
    entry = section.entry("FrameDosesAndNumber")
    if entry is None:
        return None
    numbers = mdoc.get_floats("FrameDosesAndNumber", section)
    if len(numbers) % 2 or not numbers:
        raise DedkitError(
            f"FrameDosesAndNumber = {entry.value} is not pairs of dose and frame count",
            path=where,
            line=entry.line,
        )
    doses, counts = numbers[0::2], numbers[1::2]
    if any(c < 0 or c != int(c) for c in counts) or any(
        not math.isfinite(d) or d < 0 for d in doses
    ):
        raise DedkitError(
            f"FrameDosesAndNumber = {entry.value} needs doses >= 0 and whole frame counts",
            path=where,
            line=entry.line,
        )
    return np.repeat(np.asarray(doses, dtype=np.float64), np.asarray(counts, dtype=np.int64))


def _mdoc_values(mdoc: Mdoc, n_frames: int, frames_name, path, frame_binning, need_dose):
    where = _where(mdoc, path)
    n_frames = _check_n_frames(n_frames)
    section = _pick_section(mdoc, frames_name, where)
    label = _label(section)
    listed = _doses_and_counts(mdoc, section, where)
    n_saved = _value(mdoc, section, "NumSubFrames", "get_int")
    if n_saved is not None and listed is not None and listed.size != n_saved:
        raise DedkitError(
            f"{label}: FrameDosesAndNumber lists {listed.size} frames but NumSubFrames is "
            f"{n_saved}",
            path=where,
        )
    n_mdoc = listed.size if listed is not None else n_saved
    if n_mdoc is not None and n_mdoc != n_frames:
        raise DedkitError(
            f"the mdoc describes {n_mdoc} frames ({label}) but the stack has {n_frames}",
            path=where,
        )
    exposure = _value(mdoc, section, "ExposureDose")
    doses = None
    if listed is not None and listed.sum() > 0:
        doses = listed
    elif exposure is not None and exposure > 0:
        doses = np.full(n_frames, exposure / n_frames)
    if doses is None and need_dose:
        raise DedkitError(
            f"the mdoc gives no dose ({label}: ExposureDose "
            f"{'missing' if exposure is None else f'= {exposure:g}'}, no FrameDosesAndNumber);"
            " give the dose per frame (--dose)",
            path=where,
        )
    pixel = _value(mdoc, section, "PixelSpacing")
    binning = _value(mdoc, section, "Binning")
    if pixel is not None and not (math.isfinite(pixel) and pixel > 0):
        pixel = None  # SerialEM writes 0 when it had no pixel size calibration
    if frame_binning is not None:
        try:
            frame_binning = float(frame_binning)
        except (TypeError, ValueError):
            frame_binning = math.nan
        if not (math.isfinite(frame_binning) and frame_binning > 0):
            raise DedkitError("the frames' binning must be a positive number (0.5, 1, 2...)")
    if pixel is not None and frame_binning is not None:
        if binning is None or not binning > 0:
            raise DedkitError(
                f"{label}: no Binning in the mdoc, so the frames' binning "
                f"{frame_binning:g} cannot be related to PixelSpacing",
                path=where,
            )
        pixel = pixel * float(frame_binning) / binning
    voltage = _value(mdoc, section, "Voltage")
    if voltage is not None and not voltage > 0:
        voltage = None
    prior = _value(mdoc, section, "PriorRecordDose")
    pre_dose = float(prior) if prior is not None and prior > 0 else 0.0
    source = f"mdoc {where} {label}" if where else f"mdoc {label}"
    return doses, pixel, voltage, pre_dose, source, binning


def _check_n_frames(n_frames) -> int:
    n = int(n_frames)
    if n < 1:
        raise DedkitError(f"a movie needs at least one frame, not {n_frames}")
    return n


def frame_doses_from_mdoc(
    mdoc: Mdoc, n_frames: int, *, frames_name=None, path=None, frame_binning=None
) -> FrameDoses:
    """The frame doses, pixel size and voltage that a SerialEM mdoc records.

    Parameters
    ----------
    mdoc : dedkit.io.mdoc.Mdoc
        As :func:`dedkit.io.read_mdoc` reads it.
    n_frames : int
        Frames in the stack; must match the mdoc's ``NumSubFrames`` and
        ``FrameDosesAndNumber`` where it has them.
    frames_name : str or path, optional
        The stack's file name, matched (case-insensitively, also without its suffix)
        against the ``SubFramePath`` of each section when the mdoc has several.
    path : str or path, optional
        The mdoc's file, named in errors (default ``mdoc.path``).
    frame_binning : float, optional
        SerialEM binning of the saved frames (0.5 super-resolution, 1 counting) when it
        differs from the mdoc's ``Binning`` (frames saved reduced); see the module notes.

    Returns
    -------
    FrameDoses
        Doses from ``FrameDosesAndNumber`` (variable doses) or ``ExposureDose /
        n_frames``; ``pre_dose`` from ``PriorRecordDose``.

    Raises
    ------
    DedkitError
        A frame count that does not match, no dose, several frame sets and none (or more
        than one) matching ``frames_name``; the message names the mdoc.

    Examples
    --------
    >>> from dedkit.io import parse_mdoc
    >>> text = '''Voltage = 300
    ... [FrameSet = 0]
    ... ExposureDose = 7.65892
    ... PixelSpacing = 1.2827
    ... Binning = 0.5
    ... NumSubFrames = 12
    ... FrameDosesAndNumber = 0.63824 12
    ... '''
    >>> d = frame_doses_from_mdoc(parse_mdoc(text, path="s_00993.tif.mdoc"), 12)
    >>> d.doses[0], d.pixel_size, d.voltage_kv, d.source
    (np.float64(0.63824), 1.2827, 300.0, 'mdoc s_00993.tif.mdoc [FrameSet = 0]')
    >>> frame_doses_from_mdoc(parse_mdoc(text), 12, frame_binning=1).pixel_size
    2.5654
    >>> try:
    ...     frame_doses_from_mdoc(parse_mdoc(text, path="s_00993.tif.mdoc"), 40)
    ... except DedkitError as error:
    ...     print(error)
    s_00993.tif.mdoc: the mdoc describes 12 frames ([FrameSet = 0]) but the stack has 40
    """
    doses, pixel, voltage, pre_dose, source, binning = _mdoc_values(
        mdoc, n_frames, frames_name, path, frame_binning, need_dose=True
    )
    return FrameDoses(doses, pixel, voltage, pre_dose, source, binning)


def _explicit_doses(dose_per_frame, n_frames: int) -> np.ndarray:
    doses = np.asarray(dose_per_frame, dtype=np.float64)
    if doses.ndim == 0:
        doses = np.full(n_frames, float(doses))
    elif doses.shape != (n_frames,):
        raise DedkitError(
            f"--dose gives {doses.size} frame doses but the stack has {n_frames} frames"
        )
    if not np.all(np.isfinite(doses)) or np.any(doses < 0) or not doses.sum() > 0:
        raise DedkitError("--dose must be a positive number of e/Å² per frame")
    return doses


def frame_doses(
    n_frames: int,
    *,
    dose_per_frame=None,
    mdoc=None,
    mdoc_path=None,
    pre_dose=None,
    frames_name=None,
    frame_binning=None,
    pixel_size=None,
    voltage_kv=None,
) -> FrameDoses:
    """The frame doses for a job: ``--dose`` and ``--pre-dose`` first, then the mdoc.

    Parameters
    ----------
    n_frames : int
        Frames in the stack.
    dose_per_frame : float or (n_frames,) array, optional
        e/Å² per frame given by the user; wins over the mdoc's dose (the mdoc is still
        read for its frame count, pixel size and voltage).
    mdoc : Mdoc or path-like, optional
        An mdoc already read, or its file; else ``mdoc_path`` is read.
    mdoc_path : path, optional
        The mdoc file (named in errors).
    pre_dose : float, optional
        e/Å² before the first frame; wins over ``PriorRecordDose``.
    frames_name, frame_binning
        See :func:`frame_doses_from_mdoc`.
    pixel_size, voltage_kv : float, optional
        Given by the user; win over the mdoc's.

    Returns
    -------
    FrameDoses

    Raises
    ------
    DedkitError
        No dose at all (neither ``--dose`` nor an mdoc with one), a bad value, or any of
        :func:`frame_doses_from_mdoc`'s errors.

    Examples
    --------
    >>> d = frame_doses(3, dose_per_frame=[1.0, 2.0, 1.0], pre_dose=4.0, voltage_kv=200)
    >>> d.doses, d.pre_dose, d.voltage_kv, d.uniform
    (array([1., 2., 1.]), 4.0, 200.0, False)
    """
    n_frames = _check_n_frames(n_frames)
    if mdoc is not None and not isinstance(mdoc, Mdoc):
        mdoc_path = mdoc if mdoc_path is None else mdoc_path
        mdoc = read_mdoc(mdoc)
    elif mdoc is None and mdoc_path is not None:
        mdoc = read_mdoc(mdoc_path)
    if mdoc is None and dose_per_frame is None:
        raise DedkitError("no dose per frame: give --dose (e/Å² per frame) or an --mdoc")
    doses = pixel = voltage = binning = None
    pre, source = 0.0, "--dose"
    if mdoc is not None:
        doses, pixel, voltage, pre, source, binning = _mdoc_values(
            mdoc, n_frames, frames_name, mdoc_path, frame_binning, need_dose=dose_per_frame is None
        )
    if dose_per_frame is not None:
        doses, source = _explicit_doses(dose_per_frame, n_frames), "--dose"
    if pre_dose is not None:
        pre = float(pre_dose)
        if not (math.isfinite(pre) and pre >= 0):
            raise DedkitError(f"--pre-dose must be a number >= 0 of e/Å², not {pre_dose!r}")
    if pixel_size is not None:
        pixel = float(pixel_size)
        if not (math.isfinite(pixel) and pixel > 0):
            raise DedkitError(f"the pixel size must be positive (Å), not {pixel_size!r}")
    if voltage_kv is not None:
        voltage = float(voltage_kv)
        if not (math.isfinite(voltage) and voltage > 0):
            raise DedkitError(f"the voltage must be positive (kV), not {voltage_kv!r}")
    return FrameDoses(doses, pixel, voltage, pre, source, binning)

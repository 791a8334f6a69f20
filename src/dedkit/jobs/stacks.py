"""Frame-stack jobs: gain normalisation, rotation/flip, packing, conversion, defect maps.

Each job streams the input frame by frame (see :mod:`dedkit.jobs.streaming`) into an
output written under a temporary name, and returns a :class:`StackReport`. Inputs are
never modified; an existing output is replaced only with ``force=True``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from dedkit.errors import DedkitError, about
from dedkit.frames.defects import DefectCorrector, defect_map
from dedkit.frames.gain import (
    OUTPUT_DTYPES,
    GainReference,
    check_options,
    default_scale,
    normalize_frame,
    prepare_gain,
)
from dedkit.frames.rotflip import (
    check_rotflip,
    compose_rotflip,
    inverse_rotflip,
    rotflip,
    rotflip_shape,
)
from dedkit.io.defects import read_defects
from dedkit.io.images import image_shape, read_image
from dedkit.io.stack import (
    FrameReader,
    check_stack_output,
    create_stack,
    format_from_path,
    open_stack,
)
from dedkit.io.titles import format_frame_titles, parse_frame_titles, resolve_rotflip
from dedkit.jobs.streaming import ProgressCallback, run_pipeline
from dedkit.report import JobReport

__all__ = [
    "StackReport",
    "PACK_TARGETS",
    "OUTPUT_MODES",
    "IMOD_MODE_NUMBERS",
    "output_mode_name",
    "normalize_stack",
    "rotflip_stack",
    "pack_stack",
    "unpack_stack",
    "convert_stack",
    "make_defect_map",
    "describe_stack",
]

#: ``--mode`` names: clip's byte/short/ushort/float, and 4-bit (MRC mode 101)
OUTPUT_MODES = ("byte", "short", "ushort", "float", "4bit")

#: IMOD's MRC mode numbers for the ``--mode`` names (``clip -m`` takes both)
IMOD_MODE_NUMBERS = {0: "byte", 1: "short", 2: "float", 6: "ushort", 101: "4bit"}

#: ``dedkit pack --as`` choices -> (packing, required format)
PACK_TARGETS = {
    "mode101": ("mode101", "mrc"),
    "half-bytes": ("half-bytes", "mrc"),
    "tiff4": ("tiff4", "tiff"),
    "serialemccd": ("serialemccd", "tiff"),
    "bytes": ("none", None),
}


@dataclass(kw_only=True)
class StackReport(JobReport):
    """What a stack job did, for people (:meth:`text`) and programs (:meth:`to_dict`).

    Attributes
    ----------
    command : str
    inputs : list of str
    output : str
    frames : int
    shape : (nz, ny, nx)
        Of the output.
    dtype : str
        Of the output frames ('uint8' for 4-bit data).
    packing : str
        Of the output.
    seconds : float
        Wall time of the job.
    output_bytes : int
        Size of the output written.
    n_saturated, n_negative, n_rounded, n_truncated, n_nan : int
        Values clipped at the top or bottom of the output range, floats rounded to
        integers, pixels replaced by high truncation, and NaN written as 0 in an
        integer output.
    details : dict
        Job-specific settings (scale, r/f, defects...).
    notes : list of str
        Other things the user should know (shown with the warnings).
    warnings : list of str
        Derived from the counts above and the notes (see :attr:`warnings`).
    """

    command: str
    inputs: list[str]
    output: str
    frames: int
    shape: tuple[int, int, int]
    dtype: str
    packing: str = "none"
    seconds: float = 0.0
    output_bytes: int = 0
    n_saturated: int = 0
    n_negative: int = 0
    n_rounded: int = 0
    n_truncated: int = 0
    n_nan: int = 0
    details: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("inf")

    @property
    def output_mb_per_second(self) -> float:
        return self.output_bytes / 1e6 / self.seconds if self.seconds > 0 else float("inf")

    @property
    def warnings(self) -> list[str]:
        """Lines that tell the user what had to change in their data: from the counts
        (which a job may still update after making the report) and the notes, then any
        given when the report was made."""
        out = []
        if self.n_saturated:
            out.append(f"{self.n_saturated} values were above the output range and saturated")
        if self.n_negative:
            out.append(f"{self.n_negative} values were below the output range and clipped")
        if self.n_truncated:
            out.append(f"{self.n_truncated} pixels were replaced by high truncation")
        if self.n_nan:
            out.append(f"{self.n_nan} values were NaN (not a number) and were written as 0")
        out += self.notes
        return out + [line for line in self._given_warnings if line not in out]

    @warnings.setter
    def warnings(self, lines) -> None:
        # JobReport's __init__ (and dataclasses.replace) set the field; the lines derived
        # from the counts are not kept twice
        self._given_warnings = list(lines)

    def to_dict(self) -> dict:
        d = self._declared_dict()
        d["shape"] = list(self.shape)
        d["frames_per_second"] = round(self.frames_per_second, 3)
        d["output_mb_per_second"] = round(self.output_mb_per_second, 3)
        d["seconds"] = round(self.seconds, 4)
        return d

    def text(self) -> str:
        nz, ny, nx = self.shape
        return (
            f"{self.command}: wrote {self.output} ({nx} x {ny} x {nz}, {self.dtype}"
            + (f", {self.packing}" if self.packing != "none" else "")
            + f") in {self.seconds:.2f} s, {self.frames_per_second:.1f} frames/s, "
            f"{self.output_mb_per_second:.0f} MB/s"
        )


def _output_size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.iterdir() if p.is_file())
    return path.stat().st_size


def _report(command, inputs, writer, started, **details) -> StackReport:
    return StackReport(
        command=command,
        inputs=[str(p) for p in inputs],
        output=str(writer.path),
        frames=writer.n_written,
        shape=writer.shape,
        dtype=str(writer.dtype),
        packing=writer.packing,
        seconds=time.perf_counter() - started,
        output_bytes=_output_size(writer.path),
        n_saturated=writer.n_saturated,
        n_negative=writer.n_negative,
        n_rounded=writer.n_rounded,
        n_nan=writer.n_nan,
        details=details,
    )


def output_mode_name(mode) -> str | None:
    """A ``--mode`` name from a name or an IMOD mode number (int or digits); None stays
    None. Raises DedkitError for anything else."""
    if mode is None or mode in OUTPUT_MODES:
        return mode
    try:
        return IMOD_MODE_NUMBERS[int(str(mode).strip())]
    except (KeyError, ValueError):
        numbers = ", ".join(f"{n} ({name})" for n, name in IMOD_MODE_NUMBERS.items())
        raise DedkitError(
            f"unknown output mode {mode!r}; use one of {', '.join(OUTPUT_MODES)} "
            f"or an IMOD mode number: {numbers}"
        ) from None


def _require_counts(info, command: str) -> None:
    """Refuse complex frames (MRC mode 4) before anything is written: they hold no counts
    to normalise or pack, and no real number taken from them (magnitude, real part) would
    be right for every use, so dedkit does not choose one."""
    if np.dtype(info.dtype).kind == "c":
        what = f"MRC mode {info.mode}" if info.mode is not None else str(np.dtype(info.dtype))
        raise DedkitError(
            f"{what} frames are complex numbers, not counts; '{command}' takes integer or "
            "float frames",
            path=info.path,
        )


def _mode_to_output(mode: str, output) -> tuple[np.dtype, str]:
    if mode == "4bit":
        fmt = format_from_path(output)
        return np.dtype(np.uint8), ("mode101" if fmt == "mrc" else "tiff4")
    if mode not in OUTPUT_DTYPES:
        raise DedkitError(f"unknown output mode {mode!r}; use one of {', '.join(OUTPUT_MODES)}")
    return OUTPUT_DTYPES[mode], "none"


def _check_output_range(info, reference, scale: float, path) -> None:
    """Refuse a scale that makes the largest possible raw value x gain overflow float32
    (the kernels' type): the output would hold inf and NaN made by dedkit itself. Float
    inputs have no largest value known in advance and are not checked here."""
    if info.packing != "none":
        raw_max = 15.0
    elif np.dtype(info.dtype).kind in "ui":
        raw_max = float(np.iinfo(info.dtype).max)
    else:
        return
    gain_max = 1.0 if reference is None else max(float(reference.maximum), 0.0)
    if raw_max * gain_max * scale > float(np.finfo(np.float32).max):
        raise DedkitError(
            f"scale {scale:g} x the largest gain {gain_max:g} x the largest raw value "
            f"{raw_max:g} overflows float32: the output would hold inf; use a smaller scale",
            path=path,
        )


def _titles_after(reader: FrameReader, *, note: str, **changes):
    """The frames' titles for a job's output, plus a line saying what dedkit did.

    SerialEMCCD's description is rewritten with ``changes`` (FrameTitleInfo fields:
    scaling, packing, r/f...), with the gain reference and defect file names kept. When
    the description records no r/f value (SerialEMCCD before 2014) it is left out rather
    than written with a made-up one, so a later ``-R -1`` refuses instead of guessing.
    """
    info = reader.info.frame_titles
    titles = []
    if any(t.lstrip().startswith("SerialEMCCD") for t in info.titles):
        titles = format_frame_titles(replace(info, **changes))
        if info.rotflip is None:
            titles = titles[1:]
    return titles + [note[:80]]


def _rotated_titles(reader: FrameReader, value: int):
    """Titles for frames rotated/flipped by r/f ``value``: the r/f they were saved with
    becomes the composition of theirs and ``value``, so that ``norm -R -1`` orients the
    gain reference like the new frames; a ``need`` value (frames saved unrotated) becomes
    what is still needed after ``value``."""
    info = reader.info.frame_titles
    note = f"dedkit rotflip: r/f {value}"
    if info.rotflip is None:
        return _titles_after(reader, note=note)
    applied = compose_rotflip(info.rotflip, value)
    needed = info.rotflip_needed
    if needed is not None:
        # needed = still_needed after value, so still_needed = inverse(value) then needed
        needed = compose_rotflip(inverse_rotflip(value), needed) or None
    legacy = info.legacy and (needed is None or applied == 0)
    return _titles_after(reader, note=note, rotflip=applied, rotflip_needed=needed, legacy=legacy)


def _read_raw(reader: FrameReader):
    """Reader function for the pipeline: packed rows when the file has them low nibble
    first (the kernels' layout), else unpacked frames."""
    packed = _low_first_packed(reader.info.packing)

    def read(i):
        return reader.read_packed(i) if packed else reader.read(i)

    return read, (reader.info.nx if packed else None)


@dataclass
class FrameCorrections:
    """What a command applies to each raw frame: the gain reference and the defect
    corrector, oriented like the frames, and the r/f value that oriented them."""

    rotflip: int | None
    gain: GainReference | None
    defects: DefectCorrector | None


def prepare_corrections(info, input, gain, defects, rotflip_value) -> FrameCorrections:
    """Read and orient the gain reference and defect list for the frames of ``input``
    (its :class:`StackInfo` ``info``) as ``clip norm`` does: ``rotflip_value`` (0-7, or -1
    for the frame titles' r/f) turns the reference and the defects; without it the
    reference is used as it is and the defects take the titles' r/f.
    ``dedkit norm`` and ``dedkit align`` share it."""
    frame_shape = (info.ny, info.nx)
    applied = None
    if rotflip_value is not None:
        with about(input):
            applied = resolve_rotflip(info.titles, rotflip_value)
    reference = None
    if gain is not None:
        # Without -R the reference is used as it is, as clip norm does.
        if info.format == "eer":
            from dedkit.io.eer import read_eer_gain

            # RELION's rule: an MRC reference of EER frames is inverted, a .gain is not
            image = read_eer_gain(gain, frame_shape)
        else:
            image = read_image(gain)
        reference = prepare_gain(
            image, frame_shape, rotflip=applied or 0, name=f"gain reference {gain}"
        )
    corrector = None
    if defects is not None:
        corrector = DefectCorrector.from_defects(
            read_defects(defects),
            frame_shape,
            rotflip=applied if applied is not None else info.rotflip,
        )
    return FrameCorrections(applied, reference, corrector)


def normalize_stack(
    input,
    gain,
    output,
    *,
    scale: float | None = None,
    mode: str | None = None,
    high: float | None = None,
    low: float | None = None,
    defects=None,
    rotflip_value: int | None = None,
    force: bool = False,
    progress: ProgressCallback | None = None,
) -> StackReport:
    """Gain-normalise a frame stack like ``clip norm`` (see :mod:`dedkit.frames.gain`).

    Integer and float frames are normalised (float input, MRC modes 2 and 12 and float
    TIFF, computed in float32 like the rest; NaN stays NaN in a float output and is
    written as 0, and counted, in an integer one); complex frames (MRC mode 4) are
    refused, as they hold no counts.

    Parameters
    ----------
    input : path-like
        MRC/TIFF stack or folder; 4-bit data is unpacked on reading.
    gain : path-like or None
        Gain reference (MRC, TIFF, DM3/DM4); None only scales (``clip unpack``).
    output : path-like
    scale : float, optional
        Default 16 with a float reference, else 1 (K3: pass 32).
    mode : {'byte', 'short', 'ushort', 'float', '4bit'} or IMOD mode number, optional
        Default 'float' with a gain reference (nothing lost to rounding), else 'byte'.
        IMOD's mode numbers 0, 1, 2, 6 and 101 name the same types
        (:data:`IMOD_MODE_NUMBERS`).
    high, low : float, optional
        Truncation as ``clip -h`` / ``-l``.
    defects : path-like, optional
        SerialEM defects file; defects are corrected after normalising (``clip -D``).
    rotflip_value : int, optional
        r/f value to apply to the gain reference, or -1 to read it from the frame
        titles (``clip -R``). None: the reference is used as it is.
    force : bool
        Replace an existing output.
    progress : callable(done, total), optional

    Returns
    -------
    StackReport

    Examples
    --------
    The files of ``dedkit sample``: 4 raw frames of a K3-like camera as SerialEM saves
    them (4-bit MRC, rotated by r/f 2), with the gain reference and defect list in camera
    orientation. Normalise them with K3 scaling into 16-bit integers, orienting the
    reference and the defects from the frame titles (``clip norm -R -1 -D``):

    >>> from dedkit.jobs.demo import write_samples
    >>> from dedkit.jobs.stacks import normalize_stack
    >>> _ = write_samples("sample")
    >>> report = normalize_stack(
    ...     "sample/frames.mrc", "sample/SuperRef.mrc", "frames_norm.mrc",
    ...     scale=32, mode="ushort", defects="sample/defects.txt", rotflip_value=-1,
    ... )
    >>> report.output, report.frames, report.shape, report.dtype
    ('frames_norm.mrc', 4, (4, 816, 1152), 'uint16')
    >>> report.details["gain_rotflip"], report.n_saturated
    (2, 0)

    The output is an ordinary stack:

    >>> from dedkit.io import open_stack
    >>> with open_stack("frames_norm.mrc") as stack:
    ...     stack.info.shape, stack.read(0).dtype.name
    ((4, 816, 1152), 'uint16')
    """
    started = time.perf_counter()
    # every option is checked before anything is read or written
    check_options(scale=scale, high=high, low=low)
    mode = output_mode_name(mode)
    check_stack_output(output, [input, gain, defects], force)
    with open_stack(input) as reader:
        info = reader.info
        _require_counts(info, "norm")
        frame_shape = (info.ny, info.nx)
        corrections = prepare_corrections(info, input, gain, defects, rotflip_value)
        applied_rotflip = corrections.rotflip
        reference = corrections.gain
        corrector = corrections.defects
        if scale is None:
            scale = default_scale(reference)
        _check_output_range(info, reference, scale, input)
        if mode is None:
            mode = "float" if reference is not None else "byte"
        dtype, packing = _mode_to_output(mode, output)
        note = f"dedkit norm: scaled by {scale:g}" + (
            f", gain {Path(gain).name}" if gain is not None else ""
        )
        titles = _titles_after(reader, scaling=scale, packed_4bit=packing != "none", note=note)
        read, packed_nx = _read_raw(reader)
        # Defects are corrected on float values and 4-bit output is packed after, so
        # those paths normalise to float first; otherwise straight to the output type.
        direct = corrector is None and packing == "none"
        work_dtype = dtype if direct else np.dtype(np.float32)
        buffers = [np.empty(frame_shape, work_dtype) for _ in range(2)]
        n_truncated = 0
        with create_stack(
            output,
            info.shape,
            dtype,
            packing=packing,
            titles=titles,
            pixel_size=info.pixel_size,
            force=force,
            inputs=[input, gain, defects],
        ) as writer:

            def compute(i, raw):
                nonlocal n_truncated
                result = normalize_frame(
                    raw,
                    reference,
                    scale=scale,
                    dtype=work_dtype,
                    high=high,
                    low=low,
                    packed_nx=packed_nx,
                    out=buffers[i % 2],
                )
                n_truncated += result.n_truncated
                writer.n_saturated += result.n_saturated
                writer.n_negative += result.n_negative
                writer.n_nan += result.n_nan
                if corrector is not None:
                    corrector.apply(result.data, out=result.data)
                return result

            def write(i, result):
                writer.write(result.data)

            run_pipeline(info.nz, read, compute, write, progress=progress)
    inputs = [p for p in (input, gain, defects) if p is not None]
    report = _report(
        "norm",
        inputs,
        writer,
        started,
        scale=scale,
        mode=mode,
        gain_rotflip=applied_rotflip,
        gain_factor=reference.factor if reference else None,
        defects=str(defects) if defects else None,
    )
    report.n_truncated = n_truncated
    if reference is not None and rotflip_value is None and info.rotflip:
        # clip's behaviour, but most likely not what was meant: say so
        report.notes.append(
            f"the frame titles record r/f {info.rotflip} but no -R was given: the gain "
            "reference was used as it is (-R -1 orients it like the frames)"
        )
    return report


def _map_frames(
    command,
    input,
    output,
    frame_fn,
    *,
    shape=None,
    dtype=None,
    packing="none",
    titles=None,
    compression=None,
    force=False,
    progress=None,
    read_packed=False,
    **details,
) -> StackReport:
    """Stream ``frame_fn(frame)`` over a stack into a new one (the shared job skeleton)."""
    started = time.perf_counter()
    check_stack_output(output, [input], force)
    with open_stack(input) as reader:
        info = reader.info
        out_shape = shape or info.shape
        with create_stack(
            output,
            out_shape,
            dtype or info.dtype,
            packing=packing,
            titles=info.titles if titles is None else titles,
            pixel_size=info.pixel_size,
            compression=compression,
            force=force,
            inputs=[input],
        ) as writer:
            if read_packed:

                def read(i):
                    return reader.read_packed(i)

                def write(i, frame):
                    writer.write_packed(frame)
            else:
                read = reader.read

                def write(i, frame):
                    writer.write(frame)

            run_pipeline(info.nz, read, lambda i, f: frame_fn(f), write, progress=progress)
    return _report(command, [input], writer, started, **details)


def rotflip_stack(input, output, value: int, *, force=False, progress=None) -> StackReport:
    """Rotate/flip every frame by r/f value 0-7 (counter-clockwise / 90, + 4 to flip in X
    first), keeping data type and 4-bit packing.

    The r/f in the titles is updated to the composition of the frames' own r/f and
    ``value`` (see :func:`dedkit.frames.rotflip.compose_rotflip`), so that a later
    ``norm -R -1`` (or ``prepare_gain(gain, stack.info)``) orients the gain reference
    like the rotated frames; titles that record no r/f keep recording none.
    """
    value = check_rotflip(value)
    check_stack_output(output, [input], force)
    with open_stack(input) as reader:
        info = reader.info
        titles = _rotated_titles(reader, value)
    ny, nx = rotflip_shape((info.ny, info.nx), value)
    packing = info.packing if _packing_fits(info.packing, output) else "none"
    if packing == "half-bytes":
        titles = _half_bytes_titles(titles)
    return _map_frames(
        "rotflip",
        input,
        output,
        lambda f: rotflip(f, value),
        shape=(info.nz, ny, nx),
        packing=packing,
        titles=titles,
        force=force,
        progress=progress,
        rotflip=value,
    )


def _half_bytes_titles(titles: list[str]) -> list[str]:
    """IMOD's title rule for half-X 4-bit bytes wants one "4 bits packed" title and no
    other (the writer sets the IMOD flag too)."""
    return [t for t in titles if "4 bits packed" in t][:1] or ["dedkit: 4 bits packed"]


def _packing_fits(packing: str, output) -> bool:
    fmt = format_from_path(output)
    return (
        packing
        in {
            "mrc": ("mode101", "half-bytes"),
            "tiff": ("serialemccd", "tiff4"),
            "folder": ("serialemccd", "tiff4"),
        }[fmt]
    )


def pack_stack(input, output, target: str, *, force=False, progress=None) -> StackReport:
    """Pack frames of counts into 4-bit data (or truncate to bytes), counting every value
    that does not fit (saturated at 15 or 255, negative set to 0, fractions rounded, NaN
    written as 0). Complex frames (MRC mode 4) are refused: they hold no counts.

    Parameters
    ----------
    target : {'mode101', 'half-bytes', 'tiff4', 'serialemccd', 'bytes'}
        MRC mode 101, MRC bytes with half the X size (IMOD flag and SerialEMCCD title),
        true 4-bit TIFF, SerialEMCCD's packed TIFF, or unsigned bytes in any format.
    """
    if target not in PACK_TARGETS:
        raise DedkitError(f"unknown packing {target!r}; use one of {', '.join(PACK_TARGETS)}")
    packing, needed_format = PACK_TARGETS[target]
    fmt = format_from_path(output)
    if (
        needed_format is not None
        and fmt != needed_format
        and not (needed_format == "tiff" and fmt == "folder")
    ):
        suffix = ".mrc" if needed_format == "mrc" else ".tif"
        raise DedkitError(
            f"--as {target} writes {needed_format.upper()}: name the output *{suffix}"
        )
    check_stack_output(output, [input], force)
    with open_stack(input) as reader:
        _require_counts(reader.info, "pack")
        titles = _titles_after(
            reader, scaling=None, packed_4bit=packing != "none", note=f"dedkit pack: as {target}"
        )
    if packing == "half-bytes":
        titles = _half_bytes_titles(titles)

    # Bytes: the writer rounds, clips to 0-255 and counts, as it does for 4-bit packing.
    return _map_frames(
        "pack",
        input,
        output,
        lambda f: f,
        dtype=np.uint8,
        packing=packing,
        titles=titles,
        force=force,
        progress=progress,
        target=target,
    )


def unpack_stack(input, output, *, force=False, progress=None) -> StackReport:
    """Unpack 4-bit data to one unsigned byte per pixel (any output format)."""
    check_stack_output(output, [input], force)
    with open_stack(input) as reader:
        if not reader.info.is_4bit:
            raise DedkitError("input is not 4-bit packed data; use 'dedkit convert'", path=input)
        titles = _titles_after(reader, scaling=None, packed_4bit=False, note="dedkit unpack")
    return _map_frames(
        "unpack",
        input,
        output,
        lambda f: f,
        dtype=np.uint8,
        titles=titles,
        force=force,
        progress=progress,
    )


def convert_stack(
    input, output, *, compression: str | None = None, force=False, progress=None
) -> StackReport:
    """Copy a stack to another format (MRC, TIFF, folder), keeping data type and values;
    4-bit data stays packed when the output format can hold it."""
    check_stack_output(output, [input], force)
    with open_stack(input) as reader:
        info = reader.info
    fmt = format_from_path(output)
    packing = "none"
    if info.is_4bit:
        if fmt == "mrc":
            packing = info.packing if info.packing in ("mode101", "half-bytes") else "mode101"
        elif info.packing in ("serialemccd", "tiff4"):
            packing = info.packing
        else:
            # SerialEMCCD's half-width pages need an even width; a true 4-bit TIFF does not
            packing = "serialemccd" if info.nx % 2 == 0 else "tiff4"
    return _map_frames(
        "convert",
        input,
        output,
        lambda f: f,
        packing=packing,
        compression=compression,
        force=force,
        progress=progress,
        read_packed=packing != "none" and _low_first_packed(info.packing),
        compression_used=compression or "none",
    )


def _low_first_packed(packing: str) -> bool:
    return packing in ("mode101", "half-bytes", "serialemccd")


def make_defect_map(
    defects, like, output, *, rotflip_value: int | None = None, force=False
) -> StackReport:
    """Write ``clip defectmap``'s uint8 map (1 = defect) at the size of the ``like`` file."""
    started = time.perf_counter()
    check_stack_output(output, [defects, like], force)
    shape = image_shape(like)
    value = None if rotflip_value is None else check_rotflip(rotflip_value)
    dmap = defect_map(read_defects(defects), shape, rotflip=value)
    with create_stack(
        output,
        (1, *shape),
        np.uint8,
        titles=["dedkit defectmap: 1 = defect"],
        force=force,
        inputs=[defects, like],
    ) as writer:
        writer.write(dmap)
    report = _report("defectmap", [defects, like], writer, started, defect_pixels=int(dmap.sum()))
    return report


def describe_stack(path) -> dict:
    """What ``dedkit header`` shows: size, mode, packing, titles, r/f, scaling, names."""
    with open_stack(path) as reader:
        info = reader.info
    titles = parse_frame_titles(info.titles)
    return {
        "path": info.path,
        "format": info.format,
        "nx": info.nx,
        "ny": info.ny,
        "nz": info.nz,
        "dtype": str(np.dtype(info.dtype)),
        "mode": info.mode,
        "packing": info.packing,
        "compression": info.compression,
        # (x, y) where the file has no Z spacing (z 0, issue 13 item 14)
        "pixel_size": (
            [v for i, v in enumerate(info.pixel_size) if i < 2 or v > 0]
            if info.pixel_size
            else None
        ),
        "titles": list(info.titles),
        # the calibration units as a DM file names them (x, y[, z]), e.g. ['A', 'nm']
        "units": info.extra.get("units") if info.format == "dm" else None,
        "rotflip": titles.rotflip,
        "rotflip_needed": titles.rotflip_needed,
        "scaling": titles.scaling,
        "packed_4bit_title": titles.packed_4bit,
        "gain_reference": titles.gain_reference,
        "defect_file": titles.defect_file,
    }

"""``dedkit sim movies``: a folder of simulated counting movies as SerialEM writes it.

Each movie is a :func:`dedkit.sim.movies.movie_model` movie (a known specimen moving on a
beam-induced track, Poisson counts), saved as MRC, TIFF (LZW, as SerialEM saves TIFF
frames) or EER, with the SerialEM frame mdoc ``NAME.SUFFIX.mdoc`` beside it: one
``[FrameSet = 0]`` section holding the dose (``ExposureDose``, e/Å² of the whole
exposure), the pixel size, the voltage and the frame file, so that ``dedkit align``
finds the dose by itself (:mod:`dedkit.camera.frame_dose`).

How the files appear:

- by default each movie and its mdoc are written under hidden temporary names and
  renamed into place together, the mdoc last: a movie name never holds a partial movie,
  even after Ctrl-C;
- ``interval`` waits that many seconds between movies, as a session acquiring;
- ``frame_interval`` writes each movie into its final name one frame at a time, that many
  seconds apart, and then its mdoc (atomically), as a camera saving frames does: the
  file a live session (``dedkit align --watch``) must not read before it is complete.
  The movie is first written whole under a hidden name and its bytes are then copied
  into the final name up to the end of each frame in turn (the MRC header and frame i;
  the TIFF directories and data of the pages of frame i), so that every intermediate
  file is a truncated movie. Stopped in the middle, it leaves that truncated movie
  behind, as an interrupted acquisition would.

EER: each frame's counts are split into ``eer_fractions_per_frame`` fractions, every
electron in a fraction chosen at random (at most one per pixel and fraction, as in an
EER fraction: counts above the number of fractions are clipped and said), at a random
position of the 4 x 4 sub-pixel grid. Read with ``--eer-group`` equal to that number,
the frames are the simulated counts. The mdoc of an EER movie gives ``ExposureDose``
but no frame count, so that any grouping finds its dose per frame.

Examples
--------
>>> report = write_simulated_movies("frames", movies=2, frames=3, shape=(32, 32))
>>> sorted(p.name for p in Path("frames").iterdir())
['movie_0000.mrc', 'movie_0000.mrc.mdoc', 'movie_0001.mrc', 'movie_0001.mrc.mdoc']
>>> report.counts
{'movies': 2, 'frames': 6}
"""

from __future__ import annotations

import datetime
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath

import numpy as np

from dedkit.errors import DedkitError
from dedkit.io.atomic import (
    StagedOutputs,
    check_free_space,
    check_outputs,
    temporary_sibling,
    write_atomic,
    writing,
)
from dedkit.jobs.streaming import ProgressCallback
from dedkit.report import JobReport

__all__ = [
    "MOVIE_FORMATS",
    "SimMoviesReport",
    "frame_mdoc_text",
    "split_into_fractions",
    "write_simulated_movies",
]

#: formats of ``--format`` and the suffix of their files
MOVIE_FORMATS = {"mrc": ".mrc", "tif": ".tif", "eer": ".eer"}
#: counts are saved as bytes (as SerialEM saves unnormalised counting frames) up to this
#: mean dose per pixel and frame, as uint16 above it
_BYTE_DOSE = 40.0
#: EER electrons lost to more than one per pixel and fraction are warned about above this
#: fraction of the dose (a few per movie are expected at 2 e/px over 10 fractions)
_EER_LOSS_WARNING = 1e-3
#: sub-pixel positions of an EER event per pixel along x and y (2 bits each in 65001)
_EER_SUBPIXEL = 4
#: SerialEM's date and time format in an mdoc (``08-Oct-21  07:39:08``)
_MDOC_TIME = "%d-%b-%y  %H:%M:%S"


@dataclass
class SimMoviesReport(JobReport):
    """What :func:`write_simulated_movies` wrote.

    Attributes
    ----------
    movies : list of str
        The movie files, in the order written.
    dose_per_frame : float
        e/Å² per frame, as the mdocs give it.
    """

    movies: list = field(default_factory=list)
    dose_per_frame: float = 0.0

    def text(self) -> str:
        n = self.counts.get("movies", 0)
        lines = [
            f"sim movies: wrote {n} movie{'s' if n != 1 else ''} with "
            f"{'its mdoc' if n == 1 else 'their mdocs'} to "
            f"{self.output} in {self.seconds:.1f} s "
            f"({self.details.get('format')}, {self.counts.get('frames', 0) // max(n, 1)} "
            "frames each, "
            f"{self.dose_per_frame:.4g} e/Å² per frame)"
        ]
        for line in self.details.get("next", []):
            lines.append(f"  {line}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------- checks


def _count(value, what: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise DedkitError(f"{what} must be an integer >= {low}, got {value!r}")
    return int(value)


def _positive(value, what: str, *, zero: bool = False) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not (np.isfinite(number) and (number >= 0 if zero else number > 0)):
        raise DedkitError(f"{what} must be a number {'>= 0' if zero else '> 0'}, got {value!r}")
    return number


def _movie_names(pattern: str, movies: int, suffix: str) -> list[str]:
    try:
        stems = [pattern.format(i) for i in range(movies)]
    except (IndexError, KeyError, ValueError) as error:
        raise DedkitError(
            f"name pattern {pattern!r} is not a format of one number ({error})"
        ) from None
    for stem in stems:
        if not stem or stem.startswith(".") or "/" in stem or "\\" in stem or "\0" in stem:
            raise DedkitError(f"name pattern {pattern!r} gives the file name {stem!r}")
    if len(set(stems)) < movies:
        raise DedkitError(
            f"name pattern {pattern!r} gives the same name to several movies; put the "
            "movie's number in it ({:04d})"
        )
    return [stem + suffix for stem in stems]


def _prepare_folder(folder: Path) -> None:
    if folder.exists() or folder.is_symlink():
        if not folder.is_dir():
            raise DedkitError("output exists and is not a folder", path=folder)
        return
    if not folder.parent.is_dir():
        raise DedkitError(f"output folder {folder.parent} does not exist", path=folder)
    check_outputs([folder])
    with writing(folder):
        folder.mkdir()


# ----------------------------------------------------------------------------- EER


def split_into_fractions(counts: np.ndarray, fractions: int, rng: np.random.Generator):
    """Split one frame's counts into EER fractions of single events.

    Each electron of a pixel goes to a different fraction, the fractions chosen at random
    (a uniformly random subset of the fractions for each pixel), at a random position of
    the 4 x 4 sub-pixel grid: at most one event per pixel and fraction, as EER holds.

    Parameters
    ----------
    counts : (ny, nx) integer array
        Electrons per pixel.
    fractions : int
        Fractions of the frame.
    rng : numpy.random.Generator

    Returns
    -------
    events : list of (n, 2) int64 arrays
        (x, y) on the sub-pixel grid (4 x 4 per pixel), one array per fraction; their sum
        at sampling 1 is ``min(counts, fractions)``.
    clipped : int
        Electrons lost because a pixel held more than ``fractions``.

    Examples
    --------
    >>> import numpy as np
    >>> counts = np.array([[0, 1], [2, 5]])
    >>> events, clipped = split_into_fractions(counts, 3, np.random.default_rng(0))
    >>> sum(len(e) for e in events), clipped
    (6, 2)
    """
    counts = np.asarray(counts)
    flat = counts.ravel().astype(np.int64)
    clipped = int(np.maximum(flat - fractions, 0).sum())
    remaining = np.minimum(flat, fractions)
    nx = counts.shape[1]
    out = []
    for f in range(fractions):
        # sequential draws without replacement: fraction f takes one of a pixel's
        # remaining electrons with probability remaining / fractions left
        where = np.flatnonzero(remaining)
        hit = where[rng.random(where.size) * (fractions - f) < remaining[where]]
        remaining[hit] -= 1
        sub = rng.integers(0, _EER_SUBPIXEL, size=(hit.size, 2))
        x = (hit % nx) * _EER_SUBPIXEL + sub[:, 0]
        y = (hit // nx) * _EER_SUBPIXEL + sub[:, 1]
        out.append(np.stack([x, y], axis=1).astype(np.int64))
    return out, clipped


class _EerFractions:
    """The fractions of one movie, made a frame at a time when the encoder asks for them
    (so that memory holds one frame's events, not the movie's)."""

    def __init__(self, model, per_frame: int, seed, on_frame: Callable[[int], None]):
        self.model = model
        self.per_frame = per_frame
        self.seeds = np.random.SeedSequence(seed).spawn(model.n_frames)
        self.on_frame = on_frame
        self.clipped = 0
        self._frame = None
        self._events = None

    def events(self, frame: int, k: int) -> np.ndarray:
        if frame != self._frame:
            counts = self.model.frame(frame)
            rng = np.random.default_rng(self.seeds[frame])
            self._events, clipped = split_into_fractions(counts, self.per_frame, rng)
            self._frame = frame
            self.clipped += clipped
            self.on_frame(frame)
        return self._events[k]

    def items(self) -> list:
        return [
            _LazyFraction(self, i, k)
            for i in range(self.model.n_frames)
            for k in range(self.per_frame)
        ]


class _LazyFraction:
    """One fraction's events, made when the EER encoder turns it into an array."""

    def __init__(self, source: _EerFractions, frame: int, k: int):
        self.source, self.frame, self.k = source, frame, k

    def __array__(self, dtype=None, copy=None):
        events = self.source.events(self.frame, self.k)
        return events if dtype is None else events.astype(dtype)


# ----------------------------------------------------------------------------- mdoc


def frame_mdoc_text(
    movie_name: str,
    *,
    frames: int | None,
    exposure_dose: float,
    pixel_size: float,
    voltage: float,
    folder_name: str = "Frames",
    when: datetime.datetime | None = None,
) -> str:
    """The SerialEM frame mdoc of one simulated movie (``NAME.SUFFIX.mdoc``).

    One ``[FrameSet = 0]`` section, with the keys :mod:`dedkit.camera.frame_dose` reads
    (``ExposureDose`` the e/Å² of the whole exposure, ``NumSubFrames``,
    ``FrameDosesAndNumber``, ``PixelSpacing``, ``Binning``, ``Voltage`` as a global key)
    and ``SubFramePath`` as SerialEM writes it: a Windows path on the acquisition computer.

    Parameters
    ----------
    movie_name : str
        The movie's file name.
    frames : int or None
        Frames saved; None leaves out ``NumSubFrames`` and ``FrameDosesAndNumber`` (EER:
        the frames are the reader's grouping of the fractions).
    exposure_dose : float
        e/Å² of the whole exposure.
    pixel_size : float
        Å per pixel.
    voltage : float
        kV.
    folder_name : str
        The frame folder named in ``SubFramePath``.
    when : datetime, optional
        ``DateTime`` (default now).

    Examples
    --------
    >>> from dedkit.io import parse_mdoc
    >>> from dedkit.camera.frame_dose import frame_doses_from_mdoc
    >>> text = frame_mdoc_text("m_0001.tif", frames=10, exposure_dose=15.0,
    ...                        pixel_size=1.0, voltage=300)
    >>> doses = frame_doses_from_mdoc(parse_mdoc(text), 10)
    >>> doses.total, doses.pixel_size, doses.voltage_kv
    (15.0, 1.0, 300.0)
    """
    when = when or datetime.datetime.now()
    stamp = when.strftime(_MDOC_TIME)
    path = PureWindowsPath("X:\\", folder_name, movie_name)
    lines = [
        f"T = SerialEM: dedkit sim movies (simulated counting camera)    {stamp}",
        f"Voltage = {voltage:g}",
        "",
        "[FrameSet = 0]",
        f"ExposureDose = {exposure_dose:.6g}",
        f"PixelSpacing = {pixel_size:.6g}",
        "Binning = 1",
        "CountsPerElectron = 1",
        "TiltAngle = 0",
        f"SubFramePath = {path}",
    ]
    if frames is not None:
        lines += [
            f"NumSubFrames = {frames}",
            f"FrameDosesAndNumber = {exposure_dose / frames:.6g} {frames}",
        ]
    lines += [f"DateTime = {stamp}", ""]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- writing


def _write_movie(path: Path, fmt: str, model, *, pixel_size, eer_fractions, seed, on_frame):
    """Write the whole movie to ``path`` (a working name); returns the counts it lost
    (EER: electrons beyond one per pixel and fraction; MRC/TIFF: saturated pixels)."""
    n, (ny, nx) = model.n_frames, model.shape
    if fmt == "eer":
        from dedkit.io.eer import write_eer

        source = _EerFractions(model, eer_fractions, seed, lambda i: on_frame(i))
        with writing(path):
            write_eer(path, source.items(), shape=(ny, nx))
        on_frame(n)
        return source.clipped
    dtype = np.uint8 if model.dose_per_pixel <= _BYTE_DOSE else np.uint16
    titles = [f"dedkit sim movies: simulated counting movie, {model.dose_per_pixel:g} e/px/frame"]
    if fmt == "mrc":
        from dedkit.io.mrc import MrcWriter

        writer = MrcWriter(path, (n, ny, nx), dtype, titles=titles, pixel_size=pixel_size,
                           force=True)  # fmt: skip
    else:
        from dedkit.io.tiff import TiffWriter

        writer = TiffWriter(path, (n, ny, nx), dtype, compression="lzw", titles=titles,
                            pixel_size=pixel_size, force=True)  # fmt: skip
    with writer:
        for i, frame in enumerate(model.iter_frames()):
            on_frame(i)
            writer.write(frame)
    on_frame(n)
    return writer.n_saturated


def _frame_ends(path: Path, fmt: str, n_frames: int, fractions: int) -> list[int]:
    """Byte offsets at which each frame of a finished movie file ends (its last is the
    file's size): MRC header and frames; TIFF/EER directories and data, frame by frame."""
    size = path.stat().st_size
    if fmt == "mrc":
        frame_bytes = (size - _mrc_data_start(path)) // n_frames
        return [size - (n_frames - 1 - i) * frame_bytes for i in range(n_frames)]
    import tifffile

    per = fractions if fmt == "eer" else 1
    with tifffile.TiffFile(path) as tif:
        starts = []
        for page in tif.pages:
            offsets = [o for o in (page.dataoffsets or ()) if o]
            starts.append(min([page.offset, *offsets]))
    ends = [starts[(i + 1) * per] for i in range(n_frames - 1)]
    return [*ends, size]


def _mrc_data_start(path: Path) -> int:
    from dedkit.io.mrc import read_header

    header, _ = read_header(path)
    return 1024 + int(header["nsymbt"])


def _copy_progressively(source: Path, final: Path, ends, frame_interval, sleep, on_frame):
    """Copy ``source`` into ``final`` up to each of ``ends`` in turn, ``frame_interval``
    seconds apart, flushing each part: a file growing as a camera writes it."""
    with writing(final), open(source, "rb") as src, open(final, "wb") as dst:
        done = 0
        for i, end in enumerate(ends):
            if i:
                sleep(frame_interval)
            dst.write(src.read(end - done))
            dst.flush()
            os.fsync(dst.fileno())
            done = end
            on_frame(i + 1)


def write_simulated_movies(
    folder,
    *,
    movies: int = 4,
    frames: int = 12,
    shape: tuple[int, int] = (512, 512),
    dose_per_pixel: float = 2.0,
    format: str = "mrc",
    eer_fractions_per_frame: int = 10,
    pixel_size: float = 1.0,
    voltage: float = 300.0,
    name_pattern: str = "movie_{:04d}",
    drift: float = 10.0,
    seed: int = 1,
    interval: float = 0.0,
    frame_interval: float = 0.0,
    force: bool = False,
    progress: ProgressCallback | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> SimMoviesReport:
    """Write a folder of simulated counting movies with their SerialEM frame mdocs.

    Parameters
    ----------
    folder : path-like
        Folder to write into (created if missing; other files in it are left alone).
    movies : int
        Number of movies.
    frames : int
        Frames per movie.
    shape : (ny, nx)
        Frame size in pixels.
    dose_per_pixel : float
        Mean electrons per pixel and frame (:func:`dedkit.sim.movies.simulate_movie`).
    format : {'mrc', 'tif', 'eer'}
        MRC, TIFF (LZW compressed) or EER; MRC and TIFF counts are bytes up to 40
        e/px/frame, uint16 above.
    eer_fractions_per_frame : int
        EER fractions each frame is split into (``--eer-group`` to read the frames back).
    pixel_size : float
        Å per pixel (the mdoc's ``PixelSpacing``, the MRC/TIFF headers').
    voltage : float
        kV, in the mdoc.
    name_pattern : str
        ``str.format`` pattern of the movies' file stems, given the movie's number from 0.
    drift : float
        Mean path length of the beam-induced motion, pixels; each movie's is drawn
        uniformly between 0.5 and 1.5 times it (a session's spread).
    seed : int
        >= 0; the same seed gives the same movies (the mdocs' DateTime aside), movie k
        the same whatever the number of movies.
    interval : float
        Seconds to wait between movies (0: one after the other).
    frame_interval : float
        Seconds between the frames of a movie written into its final name (0: each movie
        renamed into place whole). See the module notes.
    force : bool
        Replace movies and mdocs of the same names.
    progress : callable(done, total), optional
        Frames written so far over all frames.
    sleep : callable
        How to wait (tests pass a fake).

    Returns
    -------
    SimMoviesReport

    Raises
    ------
    DedkitError
        A bad option; a movie or mdoc that exists without ``force``; a full disk.

    Examples
    --------
    >>> r = write_simulated_movies("eer", movies=1, frames=2, shape=(16, 16),
    ...                            format="eer", eer_fractions_per_frame=4)
    >>> r.movies, round(r.dose_per_frame, 3)
    (['eer/movie_0000.eer'], 2.0)
    """
    from dedkit.sim.movies import movie_model

    start = time.monotonic()
    movies = _count(movies, "the number of movies")
    frames = _count(frames, "the number of frames")
    fractions = _count(eer_fractions_per_frame, "EER fractions per frame")
    seed = _count(seed, "the seed", low=0)
    dose_per_pixel = _positive(dose_per_pixel, "the dose per pixel")
    pixel_size = _positive(pixel_size, "the pixel size")
    voltage = _positive(voltage, "the voltage")
    drift = _positive(drift, "the drift", zero=True)
    interval = _positive(interval, "the interval between movies", zero=True)
    frame_interval = _positive(frame_interval, "the interval between frames", zero=True)
    if format not in MOVIE_FORMATS:
        raise DedkitError(f"movie format must be one of {', '.join(MOVIE_FORMATS)}, not {format!r}")
    ny, nx = (_count(v, "the frame size", low=8) for v in shape)
    folder = Path(folder)
    names = _movie_names(str(name_pattern), movies, MOVIE_FORMATS[format])
    paths = [folder / name for name in names]
    mdocs = [folder / f"{name}.mdoc" for name in names]
    _prepare_folder(folder)
    check_outputs([p for pair in zip(paths, mdocs, strict=True) for p in pair], force=force)
    if format == "mrc":
        itemsize = 1 if dose_per_pixel <= _BYTE_DOSE else 2
        # the working copy of a movie written frame by frame doubles it for a while
        check_free_space(folder, movies * frames * ny * nx * itemsize + frames * ny * nx * 2)
    dose_per_frame = dose_per_pixel / pixel_size**2
    total = movies * frames
    written: list[str] = []
    lost_total = 0
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    drifts = drift * rng.uniform(0.5, 1.5, size=movies)

    for m, (path, mdoc) in enumerate(zip(paths, mdocs, strict=True)):
        if m and interval:
            sleep(interval)
        model = movie_model((ny, nx), frames, dose_per_pixel, drift=float(drifts[m]),
                            seed=[seed, 1, m])  # fmt: skip
        done_before = m * frames

        def report_frame(i, done_before=done_before):
            if progress is not None:
                progress(done_before + min(i, frames), total)

        text = frame_mdoc_text(
            path.name,
            frames=None if format == "eer" else frames,
            exposure_dose=dose_per_frame * frames,
            pixel_size=pixel_size,
            voltage=voltage,
            folder_name=folder.resolve().name or "Frames",
        )
        eer_seed = [seed, 2, m]
        options = dict(pixel_size=pixel_size, eer_fractions=fractions, seed=eer_seed)
        if frame_interval:
            # written whole under a hidden name, then grown into its final name
            work = temporary_sibling(path).with_name(f".{path.name}.sim-{os.getpid()}")
            try:
                lost = _write_movie(work, format, model, on_frame=lambda i: None, **options)
                ends = _frame_ends(work, format, frames, fractions)
                _copy_progressively(work, path, ends, frame_interval, sleep, report_frame)
            finally:
                work.unlink(missing_ok=True)
            write_atomic(mdoc, text)
        else:
            staged = StagedOutputs()
            try:
                movie_tmp = staged.temporary(path)
                lost = _write_movie(movie_tmp, format, model, on_frame=report_frame, **options)
                with writing(mdoc):
                    staged.temporary(mdoc).write_text(text, encoding="utf-8")
                staged.commit()  # the movie, then its mdoc
            except BaseException:
                staged.discard()
                raise
        written.append(str(path))
        lost_total += lost

    first = paths[0].name
    warnings = []
    electrons = dose_per_pixel * total * ny * nx
    if format == "eer" and lost_total > _EER_LOSS_WARNING * electrons:
        warnings.append(
            f"{lost_total} electrons ({100 * lost_total / electrons:.2g} %) were lost: more "
            f"than {fractions} in a pixel and frame (an EER fraction holds one per pixel); "
            "use more --eer-fractions-per-frame"
        )
    elif format != "eer" and lost_total:
        warnings.append(f"{lost_total} pixel counts saturated the frames' 8 or 16 bits")
    eer_note = f" --eer-group {fractions}" if format == "eer" else ""
    return SimMoviesReport(
        command="movies",
        output=str(folder),
        seconds=time.monotonic() - start,
        counts={"movies": movies, "frames": total},
        details={
            "format": format,
            "shape": [ny, nx],
            "dose_per_pixel": dose_per_pixel,
            "pixel_size": pixel_size,
            "voltage": voltage,
            "eer_fractions_per_frame": fractions if format == "eer" else None,
            "drift_px": [round(float(d), 3) for d in drifts],
            "lost_counts": lost_total,
            "next": [
                f"align them: dedkit align {folder}{eer_note} -o aligned/",
                f"(dose from {first}.mdoc: {dose_per_frame:.4g} e/Å² per frame)",
            ],
        },
        warnings=warnings,
        movies=written,
        dose_per_frame=dose_per_frame,
    )

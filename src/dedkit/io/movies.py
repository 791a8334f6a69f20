"""Which files are movies, and whether a movie has been written completely.

A session of a microscope is a folder of frame stacks ("movies"): MRC, TIFF or EER files
as SerialEM (or EPU, or a camera server) writes them, often with a SerialEM frame
``.mdoc`` beside each. This module turns what a user names on the command line into the
list of movies (:func:`expand_inputs`) and tells from a file alone whether its writer
has finished it (:func:`movie_complete`), which is what a live session needs before it
may read a movie.

Decisions (issue 16):

- Movies are files whose suffix is in :data:`MOVIE_SUFFIXES` (case ignored). Hidden
  files (name starting with ``.``) never are: dedkit's own temporary outputs
  (``.NAME.part-PID.mrc``) and rsync's partial files are hidden.
- dedkit's outputs are never taken as movies when a folder or a glob pattern is
  expanded: in a *dedkit output folder* (one holding ``session.json`` or any
  ``*_align.json``), an ``.mrc`` whose stem ends with one of :data:`OUTPUT_TAGS`
  (``_DW``, ``_EVN``, ``_ODD``), or whose ``STEM_align.json`` record is beside it, is
  an output. Outside such a folder the same names are movies like any other (a user may
  well call a movie ``grid_ODD.tif``). A file named explicitly is always taken.
- A SerialEM frame mdoc (``NAME.tif.mdoc``, the stack's name with ``.mdoc`` appended,
  one ``[FrameSet = 0]`` section; SerialEM help, "Frame File Options Dialog") is
  *expected* for a movie when its folder holds the frame mdoc of any movie: SerialEM
  writes them for every stack or for none ("Save metadata (.mdoc) file for each frame
  stack"). Then the movie is complete only once its mdoc is there too.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import stat
import struct
from pathlib import Path, PureWindowsPath

from dedkit.errors import DedkitError, one_line

__all__ = [
    "MOVIE_SUFFIXES",
    "OUTPUT_TAGS",
    "expand_inputs",
    "frame_mdoc_expected",
    "frame_mdoc_path",
    "dedkit_outputs",
    "is_dedkit_output",
    "list_movies",
    "mdoc_movies",
    "movie_complete",
]

#: Suffixes of the files taken as movies (compared in lower case).
MOVIE_SUFFIXES = (".mrc", ".mrcs", ".tif", ".tiff", ".eer")

#: Endings of the stems of dedkit's image outputs besides the sum ``NAME.mrc``.
OUTPUT_TAGS = ("_DW", "_EVN", "_ODD")

_MRC_SUFFIXES = (".mrc", ".mrcs")
_TIFF_SUFFIXES = (".tif", ".tiff", ".eer")
_MRC_HEADER_BYTES = 1024
# bytes per pixel of the MRC modes a movie may have; mode 101 (4-bit, rows padded to
# whole bytes) is computed apart. Mode 0 with IMOD's 4-bit flag stores nx bytes per row
# for 2 * nx pixels, so the header's nx gives the stored size here too.
_MRC_MODE_BYTES = {0: 1, 1: 2, 2: 4, 4: 8, 6: 2, 12: 2}
_GLOB_MAGIC = frozenset("*?[")


def _is_movie_name(name: str, suffixes=MOVIE_SUFFIXES) -> bool:
    return not name.startswith(".") and name.lower().endswith(tuple(suffixes))


def dedkit_outputs(names) -> set[str]:
    """Which of the file names of one folder are dedkit's own image outputs.

    Parameters
    ----------
    names : iterable of str
        All the names in the folder (as :func:`os.listdir` gives them).

    Returns
    -------
    set of str
        Empty unless the folder is a dedkit output folder (``session.json`` or any
        ``*_align.json`` among the names); then the ``.mrc`` names whose stem ends with
        one of :data:`OUTPUT_TAGS` or has its ``STEM_align.json`` among the names.

    Examples
    --------
    >>> sorted(dedkit_outputs(["m1.mrc", "m1_align.json", "m2_DW.mrc", "m3.mrc", "m4_ODD.tif"]))
    ['m1.mrc', 'm2_DW.mrc']
    >>> dedkit_outputs(["m1.mrc", "m2_DW.mrc"])
    set()
    """
    names = set(names)
    if "session.json" not in names and not any(n.endswith("_align.json") for n in names):
        return set()
    found = set()
    for name in names:
        if name.lower().endswith(".mrc"):
            stem = name[: -len(".mrc")]
            if stem.endswith(OUTPUT_TAGS) or f"{stem}_align.json" in names:
                found.add(name)
    return found


def is_dedkit_output(path) -> bool:
    """Whether ``path`` is one of dedkit's own image outputs (see :func:`dedkit_outputs`).

    Lists the folder; to test many files of one folder call :func:`dedkit_outputs` once.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    bool

    Examples
    --------
    >>> from pathlib import Path
    >>> out = Path("aligned"); out.mkdir()
    >>> for name in ("m1.mrc", "m1_DW.mrc", "m1_align.json", "m2_ODD.mrc"):
    ...     _ = (out / name).write_bytes(b"")
    >>> [is_dedkit_output(out / n) for n in ("m1.mrc", "m1_DW.mrc", "m2_ODD.mrc")]
    [True, True, True]
    >>> (out / "m1_align.json").unlink(); (out / "m1_DW.mrc").unlink()
    >>> is_dedkit_output(out / "m2_ODD.mrc")   # no session.json or record: not an output folder
    False
    """
    path = Path(path)
    if path.suffix.lower() != ".mrc":
        return False
    try:
        names = os.listdir(path.parent)
    except OSError:
        return False
    return path.name in dedkit_outputs(names)


def list_movies(folder, *, suffixes=MOVIE_SUFFIXES) -> list[Path]:
    """The movies directly in ``folder`` (not recursive), sorted by name.

    Hidden files, folders and dedkit's own outputs (:func:`is_dedkit_output`) are left
    out.

    Parameters
    ----------
    folder : path-like
    suffixes : tuple of str
        Suffixes that make a movie (lower case, with the dot).

    Returns
    -------
    list of Path

    Raises
    ------
    DedkitError
        If the folder cannot be listed.

    Examples
    --------
    >>> from pathlib import Path
    >>> Path("frames").mkdir()
    >>> for name in ("b.tif", "a.MRC", "a.mrc.mdoc", ".a.part-1.mrc", "gain.dm4"):
    ...     _ = (Path("frames") / name).write_bytes(b"")
    >>> [p.name for p in list_movies("frames")]
    ['a.MRC', 'b.tif']
    """
    folder = Path(folder)
    try:
        with os.scandir(folder) as entries:
            found = [(e.name, e) for e in entries]
    except OSError as error:
        raise DedkitError(
            f"cannot list the folder: {error.strerror or one_line(error)}", path=folder
        ) from None
    outputs = dedkit_outputs(name for name, _ in found)
    movies = []
    for name, entry in found:
        if not _is_movie_name(name, suffixes):
            continue
        try:
            if not entry.is_file():
                continue
        except OSError:
            continue
        if name not in outputs:
            movies.append(folder / name)
    return sorted(movies, key=lambda p: p.name)


def _resolve_subframe_path(value: str, mdoc_folder: Path) -> Path:
    """Where the stack a ``SubFramePath`` names lies here.

    SerialEM writes the path on the Windows computer that saved the frames
    (``X:\\session\\frames\\m_001.tif``); the files are usually copied elsewhere, so
    the path as written is taken only if it exists, then the file name in the mdoc's
    folder, then in a subfolder of the mdoc's folder with the name of the stack's own
    folder (``frames/m_001.tif``). If none exists the mdoc's folder is given, so the
    error names a sensible place.
    """
    windows = "\\" in value or (len(value) > 1 and value[1] == ":")
    written = PureWindowsPath(value) if windows else Path(value)
    candidates = []
    if not windows:
        candidates.append(written if written.is_absolute() else mdoc_folder / written)
    name = written.name
    candidates.append(mdoc_folder / name)
    if written.parent.name:
        candidates.append(mdoc_folder / written.parent.name / name)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return mdoc_folder / name


def mdoc_movies(path) -> list[Path]:
    """The frame stacks a SerialEM ``.mdoc`` file names.

    A frame mdoc ``NAME.tif.mdoc`` (sections ``[FrameSet = n]``) stands for the stack
    ``NAME.tif`` beside it when that exists; otherwise, and for an image-stack mdoc
    (a tilt series: ``[ZValue = n]`` sections), each section's ``SubFramePath``, in
    file order, resolved as described in :func:`_resolve_subframe_path`.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    list of Path
        Stacks that were not found are listed at their place in the mdoc's folder (the
        session reports them as failed).

    Raises
    ------
    DedkitError
        If the mdoc cannot be read, names no frame stack, or none of the stacks it names
        exists.

    Examples
    --------
    >>> from pathlib import Path
    >>> _ = Path("m_001.tif").write_bytes(b"")
    >>> _ = Path("m_001.tif.mdoc").write_text("[FrameSet = 0]\\nNumSubFrames = 40\\n")
    >>> mdoc_movies("m_001.tif.mdoc")
    [PosixPath('m_001.tif')]
    >>> _ = Path("TS_01.mrc.mdoc").write_text(
    ...     "[ZValue = 0]\\nSubFramePath = D:\\\\DATA\\\\frames\\\\m_001.tif\\n")
    >>> mdoc_movies("TS_01.mrc.mdoc")
    [PosixPath('m_001.tif')]
    """
    from dedkit.io.mdoc import read_mdoc

    path = Path(path)
    mdoc = read_mdoc(path)
    folder = path.parent
    beside = (
        path.with_name(path.name[: -len(".mdoc")]) if path.name.lower().endswith(".mdoc") else None
    )
    is_frame_mdoc = bool(mdoc.sections_of("FrameSet"))
    if is_frame_mdoc and beside is not None and _is_movie_name(beside.name) and beside.is_file():
        return [beside]
    stacks = []
    for section in mdoc.sections:
        value = section.get("SubFramePath", "").strip()
        if value:
            stacks.append(_resolve_subframe_path(value, folder))
    if not stacks:
        if is_frame_mdoc and beside is not None and _is_movie_name(beside.name):
            raise DedkitError(f"frame mdoc without its stack: no file {beside.name}", path=path)
        raise DedkitError(
            "names no frame stacks (no SubFramePath entries; is it the mdoc of an image "
            "stack saved without frames?)",
            path=path,
        )
    if not any(s.is_file() for s in stacks):
        raise DedkitError(
            f"none of the {len(stacks)} frame stack(s) it names was found (looked for "
            f"{stacks[0].name} and the others in {folder})",
            path=path,
        )
    return stacks


def _expand_one(spec, outputs: dict[Path, set[str]]) -> list[Path]:
    text = os.fspath(spec)
    path = Path(text)
    try:
        mode = path.stat().st_mode
    except OSError:
        mode = None
    if mode is not None and stat.S_ISDIR(mode):
        movies = list_movies(path)
        if not movies:
            kinds = ", ".join(MOVIE_SUFFIXES)
            raise DedkitError(f"the folder holds no movies ({kinds})", path=path)
        return movies
    if mode is not None:
        if path.name.lower().endswith(".mdoc"):
            return mdoc_movies(path)
        return [path]
    if not _GLOB_MAGIC.intersection(text):
        raise DedkitError("no such file or folder", path=path)
    found: list[Path] = []
    for match in sorted(glob.glob(text, recursive=True)):
        candidate = Path(match)
        if candidate.is_dir():
            found.extend(list_movies(candidate))
        elif candidate.name.lower().endswith(".mdoc") and not candidate.name.startswith("."):
            # a session folder also holds mdocs of atlases and montages, which name no
            # frames: a pattern skips them, a file named on its own is refused
            with contextlib.suppress(DedkitError):
                found.extend(mdoc_movies(candidate))
        elif _is_movie_name(candidate.name) and candidate.is_file():
            folder = candidate.parent
            if folder not in outputs:
                try:
                    outputs[folder] = dedkit_outputs(os.listdir(folder))
                except OSError:
                    outputs[folder] = set()
            if candidate.name not in outputs[folder]:
                found.append(candidate)
    if not found:
        raise DedkitError("the pattern matches no movies", path=text)
    return found


def expand_inputs(specs) -> list[Path]:
    """The movies that command-line inputs name, duplicates removed, order kept.

    Parameters
    ----------
    specs : iterable of str or path-like
        Each one a file (taken as it is), a folder (its movies, not recursive, sorted by
        name; :func:`list_movies`), a glob pattern (``'Frames/*.tif'``, ``**`` for any
        depth; expanded here since a shell leaves a quoted one alone, matches sorted,
        only movies and mdocs kept, mdocs that name no frame stack skipped) or a SerialEM
        ``.mdoc`` (the stacks it names; :func:`mdoc_movies`).

    Returns
    -------
    list of Path
        As given or found (not made absolute); a file reached twice is listed once, at
        its first place.

    Raises
    ------
    DedkitError
        For a spec that matches nothing (a missing file, an empty folder, a pattern
        without movies, an mdoc that names no stack that exists), naming it.

    Examples
    --------
    >>> from pathlib import Path
    >>> Path("Frames").mkdir()
    >>> for name in ("m_002.tif", "m_001.tif", "notes.txt"):
    ...     _ = (Path("Frames") / name).write_bytes(b"")
    >>> [str(p) for p in expand_inputs(["Frames/m_002.tif", "Frames/*.tif"])]
    ['Frames/m_002.tif', 'Frames/m_001.tif']
    >>> expand_inputs(["Frames/*.eer"])
    Traceback (most recent call last):
    ...
    dedkit.errors.DedkitError: Frames/*.eer: the pattern matches no movies
    """
    if isinstance(specs, str | os.PathLike):
        specs = [specs]
    seen: set[str] = set()
    movies: list[Path] = []
    outputs: dict[Path, set[str]] = {}  # per folder, so a glob lists each folder once
    for spec in specs:
        for movie in _expand_one(spec, outputs):
            key = os.path.realpath(movie)
            if key not in seen:
                seen.add(key)
                movies.append(movie)
    return movies


def frame_mdoc_path(movie) -> Path:
    """Where SerialEM puts the frame mdoc of ``movie``: its name with ``.mdoc`` appended.

    Examples
    --------
    >>> frame_mdoc_path("Frames/m_001.tif")
    PosixPath('Frames/m_001.tif.mdoc')
    """
    movie = Path(movie)
    return movie.with_name(movie.name + ".mdoc")


def frame_mdoc_expected(folder, *, names=None) -> bool:
    """Whether the movies of ``folder`` come with frame mdocs: True once any movie there
    has one (``NAME.SUFFIX.mdoc`` beside ``NAME.SUFFIX``).

    Parameters
    ----------
    folder : path-like
    names : iterable of str, optional
        The names in the folder, when the caller has listed it already.

    Returns
    -------
    bool

    Examples
    --------
    >>> from pathlib import Path
    >>> Path("s").mkdir(); _ = Path("s/m_001.tif").write_bytes(b"")
    >>> frame_mdoc_expected("s")
    False
    >>> _ = Path("s/m_001.tif.mdoc").write_text("[FrameSet = 0]\\n")
    >>> frame_mdoc_expected("s")
    True
    """
    if names is None:
        try:
            names = os.listdir(folder)
        except OSError:
            return False
    for name in names:
        if name.lower().endswith(".mdoc") and _is_movie_name(name[: -len(".mdoc")]):
            return True
    return False


def _mrc_complete(path: Path, size: int) -> tuple[bool, str]:
    from dedkit.io.mrc import read_header

    if size < _MRC_HEADER_BYTES:
        return False, f"MRC file of {size} bytes, shorter than its 1024-byte header"
    try:
        header, _ = read_header(path)
    except DedkitError as error:
        return False, one_line(error).removeprefix(f"{path}: ")
    nx, ny, nz, mode = (int(header[k]) for k in ("nx", "ny", "nz", "mode"))
    nsymbt = int(header["nsymbt"])
    if nsymbt < 0:
        return False, f"corrupt MRC header: extended header size {nsymbt}"
    row = (nx + 1) // 2 if mode == 101 else nx * _MRC_MODE_BYTES[mode]
    frame = row * ny
    needed = _MRC_HEADER_BYTES + nsymbt + nz * frame
    if size < needed:
        have = max(0, size - _MRC_HEADER_BYTES - nsymbt) // frame
        return False, (
            f"MRC header gives {nz} frames ({needed} bytes) but the file has {size} bytes "
            f"({have} whole frames)"
        )
    return True, f"MRC file holds the {nz} frames its header gives"


class _QuietTifffile(logging.Filter):
    # tifffile logs a warning for each IFD chain it finds cut short, which a file being
    # written always has; the check reports it in its own words instead.
    def filter(self, record):
        return False


def _next_ifd_offset(handle, tiff, page_offset: int) -> int | None:
    fmt = tiff.tiff
    handle.seek(page_offset)
    raw = handle.read(fmt.tagnosize)
    if len(raw) < fmt.tagnosize:
        return None
    count = struct.unpack(fmt.byteorder + fmt.tagnoformat[1:], raw)[0]
    handle.seek(page_offset + fmt.tagnosize + count * fmt.tagsize)
    raw = handle.read(fmt.offsetsize)
    if len(raw) < fmt.offsetsize:
        return None
    return struct.unpack(fmt.byteorder + fmt.offsetformat[1:], raw)[0]


def _tiff_complete(path: Path, size: int) -> tuple[bool, str]:
    import tifffile

    logger = logging.getLogger("tifffile")
    quiet = _QuietTifffile()
    logger.addFilter(quiet)
    try:
        with tifffile.TiffFile(path) as tiff:
            count = 0
            last = None
            for index, page in enumerate(tiff.pages):
                offsets, counts = page.dataoffsets, page.databytecounts
                end = max((o + c for o, c in zip(offsets, counts, strict=False)), default=0)
                if end > size or not offsets:
                    return False, (
                        f"TIFF page {index} has data up to byte {end} but the file has {size} bytes"
                    )
                count += 1
                last = page
            if last is None:
                return False, "TIFF file has no pages yet"
            nxt = _next_ifd_offset(tiff.filehandle, tiff, last.offset)
    # tifffile raises its own, struct and OS errors on a file cut inside its structures
    except Exception as error:
        return False, f"TIFF structure not readable yet: {one_line(error)}"
    finally:
        logger.removeFilter(quiet)
    if nxt is None:
        return False, f"TIFF directory of page {count - 1} is cut short"
    if nxt != 0:
        return False, (
            f"TIFF directory of page {count - 1} points to a next page at byte {nxt} "
            f"that the file ({size} bytes) does not hold"
        )
    return True, f"TIFF file holds {count} complete pages"


def movie_complete(path, *, mdoc: bool | None = None) -> tuple[bool, str]:
    """Whether a movie's writer has finished it, judged from the file (and its mdoc).

    - MRC (``.mrc``, ``.mrcs``): the header reads and the file holds header, extended
      header and the header's nz frames (4-bit mode 101 rows padded to whole bytes,
      IMOD's half-byte mode 0 counted as stored).
    - TIFF and EER (``.tif``, ``.tiff``, ``.eer``; EER files are TIFF with compression
      65000-65002): every page's directory parses, every page's data lie inside the
      file and the last directory ends the chain (next offset 0).
    - the frame mdoc ``PATH.mdoc`` is there (not empty) when it is expected.

    A writer may leave a file that passes between two frames (an MRC whose header it
    updates per frame, a TIFF between two pages): a live session also waits until size
    and modification time stop changing (:class:`dedkit.jobs.watch.MovieWatcher`).

    Parameters
    ----------
    path : path-like
    mdoc : bool or None
        Whether a SerialEM frame mdoc ``PATH.mdoc`` must be there: None (default) when
        the folder holds the frame mdoc of any movie (:func:`frame_mdoc_expected`).

    Returns
    -------
    complete : bool
    reason : str
        One line: why not, or what was found.

    Examples
    --------
    >>> import numpy as np
    >>> from pathlib import Path
    >>> from dedkit.io.mrc import MrcWriter
    >>> Path("mc").mkdir()
    >>> with MrcWriter("mc/m.mrc", (3, 4, 8), np.int16) as w:
    ...     for _ in range(3):
    ...         w.write(np.zeros((4, 8), np.int16))
    >>> movie_complete("mc/m.mrc")
    (True, 'MRC file holds the 3 frames its header gives')
    >>> movie_complete("mc/m.mrc", mdoc=True)[1]
    'MRC file holds the 3 frames its header gives, but its frame mdoc m.mrc.mdoc is not written yet'
    >>> with open("mc/m.mrc", "r+b") as f:
    ...     _ = f.truncate(1024 + 2 * 64)
    >>> movie_complete("mc/m.mrc")
    (False, 'MRC header gives 3 frames (1216 bytes) but the file has 1152 bytes (2 whole frames)')
    """
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        return False, "no such file"
    except OSError as error:
        return False, f"cannot read: {error.strerror or one_line(error)}"
    if not stat.S_ISREG(info.st_mode):
        return False, "not a regular file"
    suffix = path.suffix.lower()
    if suffix in _MRC_SUFFIXES:
        done, reason = _mrc_complete(path, info.st_size)
    elif suffix in _TIFF_SUFFIXES:
        done, reason = _tiff_complete(path, info.st_size)
    else:
        return False, f"not a movie: suffix {path.suffix or '(none)'} is none of {MOVIE_SUFFIXES}"
    if not done:
        return done, reason
    if mdoc is None:
        mdoc = frame_mdoc_expected(path.parent)
    if mdoc:
        side = frame_mdoc_path(path)
        try:
            present = side.stat().st_size > 0
        except OSError:
            present = False
        if not present:
            return False, f"{reason}, but its frame mdoc {side.name} is not written yet"
    return True, reason

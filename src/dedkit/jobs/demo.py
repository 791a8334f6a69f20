"""``dedkit demo``: the main job end to end on built-in data, checked against the truth.

Two parts, each a function returning a :class:`~dedkit.jobs.demo_part.DemoPart`:
``camera`` (:func:`dedkit.jobs.demo_camera.run_camera_demo`: a simulated K3 movie with
beam-induced drift, gain and defects as SerialEM saves it, normalised, aligned and dose
weighted) and ``hpd`` (:func:`dedkit.jobs.gold.run_gold_demo`: gold nanoparticles on
the MÖNCH, the MÖNCH paper's figure 6). :func:`run_demo` runs them into one folder and
writes ``report.html`` (self-contained: it opens from the file) and ``report.json``.

The synthetic K3-like camera of this module (1/10 of a K3 in each direction: raw 4-bit
counting frames saved as SerialEMCCD saves unnormalised frames, MRC mode 101 rotated by
r/f 2 with the title saying so, with the gain reference and defect list in camera
orientation beside them and an .mdoc) also makes the files of ``dedkit sample``
(:func:`write_samples`).
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import html
import importlib
import json
import os
import platform
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dedkit import __version__
from dedkit.errors import DedkitError
from dedkit.frames.rotflip import rotflip
from dedkit.io.atomic import FolderOutput, atomic_output, check_outputs
from dedkit.io.defects import write_defects
from dedkit.io.mdoc import Mdoc, write_mdoc
from dedkit.io.stack import create_stack, open_stack
from dedkit.io.titles import FrameTitleInfo, format_frame_titles
from dedkit.records.defects import DefectList
from dedkit.report import JobReport
from dedkit.sim.counting_raw import gain_nonuniformity, simulate_counting_frames, specimen_image

__all__ = [
    "DEMO_PARTS",
    "DemoSummary",
    "SampleReport",
    "machine_info",
    "render_demo_report",
    "run_demo",
    "write_samples",
]

#: physical (sensor) size of the demo camera: a K3 (5760 x 4092) cut by 10 in X and Y
DEMO_PHYSICAL_SIZE = (408, 576)
DEMO_ROTFLIP = 2
K3_SCALE = 32.0
DOSE_PER_FRAME = 0.6  # electrons per super-resolution pixel per frame
BLOCK = 16  # pixels per side of the blocks the flat-field error is measured on


def _demo_defects(rng: np.random.Generator) -> DefectList:
    ny, nx = DEMO_PHYSICAL_SIZE
    xs = rng.integers(4, nx - 4, 25)
    ys = rng.integers(4, ny - 4, 25)
    return DefectList(
        camera_size_x=nx,
        camera_size_y=ny,
        rotation_and_flip=0,
        k2_type=1,
        bad_pixels=[(int(x), int(y)) for x, y in zip(xs, ys, strict=True)],
        bad_columns=[int(nx * 0.3)],
        bad_rows=[int(ny * 0.7)],
        comments=["# dedkit demo camera: 1/10 of a K3 in X and Y"],
    )


def _defect_masks(defects: DefectList, shape) -> tuple[np.ndarray, np.ndarray]:
    """Hot and dead super-resolution pixels (Y up, camera orientation) of a list made at
    physical size: each listed pixel is a 2x2 block; y in the list counts from the top."""
    ny, nx = shape
    hot = np.zeros(shape, bool)
    dead = np.zeros(shape, bool)
    for x, y in defects.bad_pixels:
        top = ny - 2 * y - 2
        hot[top : top + 2, 2 * x : 2 * x + 2] = True
    for c in defects.bad_columns:
        hot[:, 2 * c : 2 * c + 2] = True
    for r in defects.bad_rows:
        top = ny - 2 * r - 2
        dead[top : top + 2, :] = True
        hot[top : top + 2, :] = False
    return hot, dead


@dataclass
class _Camera:
    """What the synthesis of a counting-camera exposure made (truth for the checks)."""

    shape: tuple[int, int]
    image: np.ndarray
    hot: np.ndarray
    dead: np.ndarray
    raw_sum: np.ndarray


def _write_camera_files(folder: Path, names: dict, n_frames: int, rng) -> _Camera:
    """Synthesise the demo camera's exposure and write it as SerialEM would save it:
    frames (MRC mode 101, r/f 2 in the titles), gain reference and defect list in camera
    orientation, an .mdoc, and with ``names['tiff']`` the same frames as SerialEMCCD's
    packed TIFF."""
    shape = (2 * DEMO_PHYSICAL_SIZE[0], 2 * DEMO_PHYSICAL_SIZE[1])
    defects = _demo_defects(rng)
    sensitivity_camera = gain_nonuniformity(shape, rng)
    hot_camera, dead_camera = _defect_masks(defects, shape)
    # The frames are saved rotated by r/f 2; reference and list stay in camera orientation.
    sensitivity = rotflip(sensitivity_camera, DEMO_ROTFLIP)
    hot, dead = rotflip(hot_camera, DEMO_ROTFLIP), rotflip(dead_camera, DEMO_ROTFLIP)
    image = specimen_image(shape, rng)
    title_info = FrameTitleInfo(packed_4bit=True, rotflip=DEMO_ROTFLIP)
    titles = format_frame_titles(title_info) + [f"  {names['gain']}", f"  {names['defects']}"]
    raw_sum = np.zeros(shape)
    with create_stack(
        folder / names["raw"],
        (n_frames, *shape),
        np.uint8,
        packing="mode101",
        titles=titles,
        pixel_size=0.83,
    ) as writer:
        for frame in simulate_counting_frames(
            image, DOSE_PER_FRAME, n_frames, sensitivity, rng, hot=hot, dead=dead
        ):
            raw_sum += frame
            writer.write(frame)
    if names.get("tiff"):
        # the same frames, one at a time, as SerialEMCCD's packed TIFF
        with (
            open_stack(folder / names["raw"]) as reader,
            create_stack(
                folder / names["tiff"],
                (n_frames, *shape),
                np.uint8,
                packing="serialemccd",
                titles=titles,
                pixel_size=0.83,
            ) as writer,
        ):
            for frame in reader:
                writer.write(frame)
    gain_camera = (1.0 / sensitivity_camera).astype(np.float32)
    with create_stack(
        folder / names["gain"],
        (1, *shape),
        np.float32,
        titles=["dedkit demo: gain reference, camera orientation"],
    ) as w:
        w.write(gain_camera)
    write_defects(defects, folder / names["defects"])
    mdoc = Mdoc()
    section = mdoc.add_section("FrameSet", 0)
    for key, value in [
        ("SubFramePath", names["raw"]),
        ("NumSubFrames", n_frames),
        ("ExposureDose", round(DOSE_PER_FRAME * n_frames * 4, 3)),
        ("PixelSpacing", 0.83),
        ("Binning", 0.5),
        ("RotationAndFlip", DEMO_ROTFLIP),
        ("GainReference", names["gain"]),
        ("DefectFile", names["defects"]),
        ("Voltage", 300),
    ]:
        section.set(key, value)
    write_mdoc(mdoc, folder / names["mdoc"])
    return _Camera(shape, image, hot, dead, raw_sum)


#: kinds of folder ``dedkit demo`` and ``dedkit sample`` write (see :mod:`dedkit.io.atomic`)
DEMO_KIND = "demo"
SAMPLE_KIND = "sample"


# ------------------------------------------------------------------------------ dedkit demo

#: the demo's parts, in the order they run
DEMO_PARTS = ("camera", "hpd")
#: where each part's function lives (imported when the part runs: the hpd part pulls in
#: Geant4, abTEM and PyTorch, the camera part none of them)
PART_FUNCTIONS = {
    "camera": ("dedkit.jobs.demo_camera", "run_camera_demo"),
    "hpd": ("dedkit.jobs.gold", "run_gold_demo"),
}
#: the folder ``dedkit demo`` writes without ``-o``
DEFAULT_FOLDER = "dedkit-demo"
REPORT_HTML = "report.html"
REPORT_JSON = "report.json"
#: what the page calls each part
PART_HEADINGS = {"camera": "Counting camera", "hpd": "MÖNCH: gold nanoparticles"}


@dataclass(kw_only=True)
class DemoSummary(JobReport):
    """What ``dedkit demo`` ran, what it found and where it wrote it.

    Attributes
    ----------
    folder : str
        The demo folder (``report.html``, ``report.json``; each part's files in it, or,
        with both parts, in its ``camera/`` and ``hpd/`` subfolders).
    parts : list of dict
        Each part's :meth:`~dedkit.jobs.demo_part.DemoPart.to_dict`, its figures and
        files as paths relative to ``folder``, and ``wall_seconds``.
    passed : bool
        Whether every check of every part passed.
    failed : list of str
        ``"part: check (value, target TARGET)"`` for each failed check.
    full : bool
        Whether the paper's scale was run.
    seed : int
        The random seed.
    report_html, report_json : str
        Paths of the two reports.
    machine : dict
        Cores, processor, platform, Python and memory of the machine the demo ran on.
    date : str
        When it ran (ISO 8601, local time with its offset).
    dedkit : str
        The dedkit version.

    Examples
    --------
    >>> s = DemoSummary(command="demo", folder="d", parts=[], passed=True, failed=[],
    ...                 full=False, seed=1, report_html="d/report.html",
    ...                 report_json="d/report.json", machine={"cores": 2}, date="", dedkit="")
    >>> s.text().splitlines()[-1]
    'report: d/report.html'
    """

    folder: str
    parts: list
    passed: bool
    failed: list
    full: bool
    seed: int
    report_html: str
    report_json: str
    machine: dict
    date: str
    dedkit: str

    def to_dict(self) -> dict:
        return {
            "command": self.command,
            "folder": self.folder,
            "passed": self.passed,
            "failed": list(self.failed),
            "full": self.full,
            "seed": self.seed,
            "seconds": round(self.seconds, 3),
            "report_html": self.report_html,
            "report_json": self.report_json,
            "dedkit": self.dedkit,
            "date": self.date,
            "machine": dict(self.machine),
            "parts": self.parts,
            "warnings": list(self.warnings),
        }

    def text(self) -> str:
        names = " + ".join(p["name"] for p in self.parts) or "no part"
        cores = self.machine.get("cores")
        lines = [
            f"dedkit demo{' --full' if self.full else ''}: {names} in {self.seconds:.1f} s"
            + (f" on {cores} cores" if cores else "")
            + f", in {self.folder}"
        ]
        for part in self.parts:
            n_pass = sum(c["passed"] for c in part["checks"])
            lines.append("")
            lines.append(
                f"{part['name']}: {part['title']} ({part['wall_seconds']:.1f} s, "
                f"{n_pass} of {len(part['checks'])} checks passed)"
            )
            if part["rows"]:
                lines += _text_table(_row_columns(part["rows"]), part["rows"])
            checks = [
                {
                    "check": c["what"],
                    "value": c["value"],
                    "target": c["target"],
                    "result": "PASS" if c["passed"] else "FAIL",
                }
                for c in part["checks"]
            ]
            if checks:
                lines += _text_table(["check", "value", "target", "result"], checks)
        lines.append("")
        n_checks = sum(len(p["checks"]) for p in self.parts)
        if self.passed:
            lines.append(f"all {n_checks} checks passed")
        else:
            lines.append(f"{len(self.failed)} of {n_checks} checks FAILED:")
            lines += [f"  {line}" for line in self.failed]
        lines.append(f"report: {self.report_html}")
        return "\n".join(lines)


def run_demo(
    folder=None,
    *,
    parts=DEMO_PARTS,
    full: bool = False,
    seed: int = 1,
    force: bool = False,
    progress=None,
) -> DemoSummary:
    """Run the demo's parts on built-in data, check them against the truth, and write
    ``report.html`` and ``report.json`` (``dedkit demo``).

    The parts (:data:`DEMO_PARTS`): ``camera``, a simulated K3 movie with beam-induced
    drift, gain and defects as SerialEM saves it, normalised, aligned and dose weighted
    (:func:`dedkit.jobs.demo_camera.run_camera_demo`); ``hpd``, gold nanoparticles on
    the MÖNCH, centroid against CNN localisation (:func:`dedkit.jobs.gold.run_gold_demo`).

    Parameters
    ----------
    folder : path-like, optional
        The folder to write (default :data:`DEFAULT_FOLDER`, ``dedkit-demo``). It must
        not exist, or be empty; ``force`` replaces a previous demo folder (one dedkit
        wrote as a demo, holding nothing else), never any other folder. One part writes
        its files into ``folder`` itself; both parts into ``folder/camera`` and
        ``folder/hpd``. The folder appears complete or not at all.
    parts : sequence of str
        The parts to run, of :data:`DEMO_PARTS` (run in that order).
    full : bool
        The paper's scale instead of the few-minute one.
    seed : int
        Random seed of every part.
    force : bool
        Replace a previous demo folder.
    progress : callable, optional
        ``progress(done, total, label)``: ``label`` names the part, and its step after a
        colon when the part names one (``"hpd: clusters"``); ``total`` may be None.

    Returns
    -------
    DemoSummary
        Checks passed or failed, per part, and where the reports are.

    Raises
    ------
    DedkitError
        An unknown part, a folder that may not be written, a part's missing optional
        dependency (one line each; nothing is written).

    Examples
    --------
    >>> run_demo("demo", parts=["gold"])
    Traceback (most recent call last):
    ...
    dedkit.errors.DedkitError: unknown demo part 'gold' (the parts: camera, hpd)
    """
    parts = _check_parts(parts)
    folder = check_outputs(
        [FolderOutput(DEFAULT_FOLDER if folder is None else folder, DEMO_KIND)], force=force
    )[0]
    started = time.perf_counter()
    date = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    done, warnings = [], []
    with atomic_output(folder, kind=DEMO_KIND) as tmp, _Prefetch(parts, full, seed) as prefetch:
        tmp.mkdir()
        root = Path(os.path.abspath(tmp))
        for name in parts:
            if name == "hpd":
                prefetch.wait()
            # one part writes into the folder itself (``dedkit demo hpd -o DIR`` puts
            # image_centroid.mrc in DIR), both into a subfolder each
            where = root if len(parts) == 1 else root / name
            where.mkdir(exist_ok=True)
            part_started = time.perf_counter()
            part = _run_part(name, where, full=full, seed=seed, progress=progress)
            wall = time.perf_counter() - part_started
            done.append(_part_dict(part, name, where, root, wall, warnings))
        failed = [
            f"{p['name']}: {c['what']} ({c['value']}, target {c['target']})"
            for p in done
            for c in p["checks"]
            if not c["passed"]
        ]
        summary = DemoSummary(
            command="demo",
            output=str(folder),
            folder=str(folder),
            parts=done,
            passed=not failed,
            failed=failed,
            full=bool(full),
            seed=int(seed),
            report_html=str(folder / REPORT_HTML),
            report_json=str(folder / REPORT_JSON),
            machine=machine_info(),
            date=date,
            dedkit=__version__,
            warnings=warnings,
        )
        summary.seconds = time.perf_counter() - started
        (root / REPORT_JSON).write_text(
            json.dumps(summary.to_dict(), indent=1, default=str) + "\n", encoding="utf-8"
        )
        (root / REPORT_HTML).write_text(render_demo_report(summary, root), encoding="utf-8")
    return summary


def _check_parts(parts) -> list[str]:
    if isinstance(parts, str):
        parts = [parts]
    parts = list(parts)
    for name in parts:
        if name not in DEMO_PARTS:
            raise DedkitError(f"unknown demo part {name!r} (the parts: {', '.join(DEMO_PARTS)})")
    if not parts:
        raise DedkitError(f"no demo part to run (the parts: {', '.join(DEMO_PARTS)})")
    # each once, in the demo's order
    return [name for name in DEMO_PARTS if name in parts]


class _Prefetch:
    """The hpd part's specimen image and track library, computed in a second process
    while the camera part runs (on a first run they take minutes on one core; cached
    afterwards, when this costs a process start). The hpd part waits for it; if it
    failed, the part computes them itself and reports what goes wrong."""

    #: off in the tests of the demo's shell, whose parts are stand-ins
    enabled = True

    def __init__(self, parts, full: bool, seed: int):
        self.process = None
        self.wanted = self.enabled and "hpd" in parts and "camera" in parts
        self.full, self.seed = bool(full), int(seed)

    def __enter__(self):
        if self.wanted:
            import multiprocessing

            context = multiprocessing.get_context("spawn")
            # not a daemon: it starts Geant4 worker processes of its own
            self.process = context.Process(
                target=_prefetch, kwargs={"full": self.full, "seed": self.seed}
            )
            self.process.start()
        return self

    def wait(self) -> None:
        if self.process is not None:
            self.process.join()
            self.process = None

    def __exit__(self, *exc) -> None:
        # an interrupted or failed demo stops the computation (its cache files are
        # written atomically: nothing half-written is left)
        if self.process is not None:
            self.process.terminate()
            self.process.join()
            self.process = None


def _prefetch(*, full: bool, seed: int) -> None:
    """The second process of :class:`_Prefetch`: silent, since whatever goes wrong here
    happens again in the hpd part, which reports it in one line."""
    try:
        from dedkit.jobs.gold import prepare_gold_demo

        prepare_gold_demo(full=full, seed=seed)
    except BaseException:  # noqa: BLE001 - reported by the hpd part when it recomputes
        pass


def _part_runner(name: str):
    """The function of part ``name`` (imported now: see :data:`PART_FUNCTIONS`)."""
    module, function = PART_FUNCTIONS[name]
    return getattr(importlib.import_module(module), function)


def _run_part(name: str, where: Path, *, full: bool, seed: int, progress):
    def part_progress(done, total=None, *args, **info):
        # a part may name its step: progress(done, total, "clusters") or step="clusters"
        step = args[0] if args and isinstance(args[0], str) else info.get("step")
        progress(done, total, f"{name}: {step}" if step else name)

    if progress is not None:
        progress(0, None, name)
    try:
        runner = _part_runner(name)
        return runner(where, full=full, seed=seed,
                      progress=None if progress is None else part_progress)  # fmt: skip
    except ModuleNotFoundError as error:
        missing = error.name or str(error)
        if missing.startswith("dedkit"):
            raise
        raise DedkitError(
            f"the {name} part of dedkit demo needs {missing}, which is not installed: "
            "pip install -c constraints.txt '.[demo]'"
        ) from None


def _part_dict(part, name: str, where: Path, root: Path, wall: float, warnings: list) -> dict:
    """A part's :meth:`to_dict` with its figures and files relative to ``root``."""
    d = part.to_dict()
    if d.get("name") != name:
        warnings.append(f"the {name} part called itself {d.get('name')!r}")
        d["name"] = name
    d["passed"] = all(c["passed"] for c in d["checks"])
    for key in ("figures", "files"):
        d[key] = {
            label: _relative(path, where, root, f"{name} {key[:-1]} {label!r}", warnings)
            for label, path in d[key].items()
        }
    d["wall_seconds"] = round(wall, 3)
    return d


def _relative(path, where: Path, root: Path, what: str, warnings: list) -> str:
    """``path`` (absolute, or relative to the part's folder ``where``) relative to
    ``root``, as a POSIX path for the page's links."""
    p = Path(path)
    if not p.is_absolute():
        p = where / p
    try:
        rel = Path(os.path.abspath(p)).relative_to(root)
    except ValueError:
        try:  # a part that resolved symbolic links in its folder's path
            rel = p.resolve().relative_to(root.resolve())
        except ValueError:
            warnings.append(f"{what} is outside the demo folder: {path}")
            return str(path)
    if not (root / rel).exists():
        warnings.append(f"{what} was not written: {rel.as_posix()}")
    return rel.as_posix()


def machine_info() -> dict:
    """The machine a demo ran on: cores (all and usable), processor, memory, platform.

    Examples
    --------
    >>> info = machine_info()
    >>> info["cores"] >= 1 and info["usable_cores"] >= 1
    True
    """
    cores = os.cpu_count() or 1
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = cores
    processor = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                processor = line.split(":", 1)[1].strip()
                break
    memory = None
    with contextlib.suppress(AttributeError, ValueError, OSError):
        memory = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    return {
        "cores": cores,
        "usable_cores": usable,
        "processor": processor,
        "memory_GiB": memory,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }


def _cell(value) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4g}"
    return str(value)


def _row_columns(rows) -> list[str]:
    """The columns of a table of dicts, in the order they first appear."""
    columns = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    return columns


def _text_table(columns, rows, indent: str = "  ") -> list[str]:
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = [indent + "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += [indent + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return [line.rstrip() for line in lines]


# ------------------------------------------------------------------------------ report.html


def render_demo_report(summary: DemoSummary, folder) -> str:
    """``report.html`` of a demo: one page that opens from the file, needing no network.

    The figures are inline (base64 ``data:`` URIs, read from ``folder``), the style
    sheet too, and there is no script. The page holds a header (dedkit version, date,
    machine, time of each part) and, for each part, its checks with pass/fail marks,
    its table, its figures with their captions and its files as relative links.

    Parameters
    ----------
    summary : DemoSummary
        What :func:`run_demo` found.
    folder : path-like
        The demo folder (where the figures are read from).

    Returns
    -------
    str
        The page (write it with ``encoding="utf-8"``).

    Examples
    --------
    >>> part = {"name": "camera", "title": "a fake part", "rows": [{"a": 1.5}],
    ...         "checks": [{"what": "answer", "value": "41", "target": "= 42",
    ...                     "passed": False}],
    ...         "figures": {}, "files": {}, "wall_seconds": 1.0, "details": {}}
    >>> s = DemoSummary(command="demo", folder=".", parts=[part], passed=False,
    ...                 failed=["camera: answer (41, target = 42)"], full=False, seed=1,
    ...                 report_html="report.html", report_json="report.json",
    ...                 machine={"cores": 2}, date="2026-01-01T00:00:00+00:00", dedkit="0")
    >>> page = render_demo_report(s, ".")
    >>> page.startswith("<!DOCTYPE html>"), "FAIL" in page, "<script" in page
    (True, True, False)
    """
    folder = Path(folder)
    m = summary.machine
    verdict = (
        '<p class="verdict pass">&#10004; every check passed</p>'
        if summary.passed
        else '<p class="verdict fail">&#10008; '
        + _e(f"{len(summary.failed)} check(s) failed: " + "; ".join(summary.failed))
        + "</p>"
    )
    facts = [
        ("dedkit", summary.dedkit),
        ("date", summary.date),
        ("scale", "full (the paper's)" if summary.full else "reduced (the default)"),
        ("seed", summary.seed),
        (
            "machine",
            f"{m.get('cores', '?')} cores ({m.get('usable_cores', m.get('cores', '?'))} usable)"
            + (f", {m['processor']}" if m.get("processor") else "")
            + (f", {m['memory_GiB']} GiB" if m.get("memory_GiB") else ""),
        ),
        ("platform", f"{m.get('platform', '')} (Python {m.get('python', '')})"),
        (
            "time",
            ", ".join(f"{p['name']} {p['wall_seconds']:.1f} s" for p in summary.parts)
            + f"; total {summary.seconds:.1f} s",
        ),
    ]
    head = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in facts)
    body = [f'<header><h1>dedkit demo</h1>{verdict}<table class="facts">{head}</table></header>']
    if summary.warnings:
        body.append(
            '<div class="warn"><b>Warnings</b><ul>'
            + "".join(f"<li>{_e(w)}</li>" for w in summary.warnings)
            + "</ul></div>"
        )
    body += [_part_html(part, folder) for part in summary.parts]
    body.append(
        f"<footer>Written by dedkit {_e(summary.dedkit)} (<code>dedkit demo</code>). "
        f'The same numbers are in <a href="{REPORT_JSON}">{REPORT_JSON}</a>.</footer>'
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="generator" content="dedkit {_e(summary.dedkit)}">'
        f"<title>dedkit demo</title><style>{_CSS}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _part_html(part: dict, folder: Path) -> str:
    name = part["name"]
    checks = part["checks"]
    n_pass = sum(c["passed"] for c in checks)
    out = [
        f'<section id="{_e(name)}">'
        f"<h2>{_e(PART_HEADINGS.get(name, name))}: {_e(part['title'])}</h2>"
        f'<p class="note">{n_pass} of {len(checks)} checks passed, '
        f"{part['wall_seconds']:.1f} s</p>"
    ]
    if checks:
        rows = "".join(
            f'<tr class="{"pass" if c["passed"] else "fail"}"><td>{_e(c["what"])}</td>'
            f'<td class="num">{_e(c["value"])}</td><td class="num">{_e(c["target"])}</td>'
            f'<td class="mark">{"&#10004; PASS" if c["passed"] else "&#10008; FAIL"}</td></tr>'
            for c in checks
        )
        out.append(
            "<h3>Checks</h3><table><thead><tr><th>check</th><th>value</th><th>target</th>"
            f"<th>result</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    if part["rows"]:
        columns = _row_columns(part["rows"])
        header = "".join(f"<th>{_e(c)}</th>" for c in columns)
        rows = "".join(
            "<tr>" + "".join(f"<td>{_e(_cell(r.get(c)))}</td>" for c in columns) + "</tr>"
            for r in part["rows"]
        )
        out.append(
            f"<h3>Results</h3><table><thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table>"
        )
    if part["figures"]:
        out.append("<h3>Figures</h3>")
        out += [_figure_html(caption, path, folder) for caption, path in part["figures"].items()]
    if part["files"]:
        items = []
        for label, path in part["files"].items():
            target = folder / path
            size = f" ({_size(target.stat().st_size)})" if target.is_file() else ""
            items.append(
                f'<li><a href="{_e(urllib.parse.quote(path))}"><code>{_e(path)}</code></a>'
                f" {_e(label)}{size}</li>"
            )
        out.append(f"<h3>Files</h3><ul>{''.join(items)}</ul>")
    if part.get("details"):
        details = json.dumps(part["details"], indent=1, default=str)
        out.append(f"<details><summary>Details</summary><pre>{_e(details)}</pre></details>")
    out.append("</section>")
    return "\n".join(out)


#: figures the page shows inline, by suffix (anything else is linked)
_IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
                ".svg": "image/svg+xml"}  # fmt: skip


def _figure_html(caption: str, path: str, folder: Path) -> str:
    target = folder / path
    kind = _IMAGE_TYPES.get(Path(path).suffix.lower())
    if kind is None or not target.is_file():
        why = "not written" if not target.is_file() else "not an image the page can show"
        return (
            f'<figure><p class="note">{_e(path)}: {why}</p>'
            f"<figcaption>{_e(caption)}</figcaption></figure>"
        )
    data = base64.b64encode(target.read_bytes()).decode("ascii")
    return (
        f'<figure><img src="data:{kind};base64,{data}" alt="{_e(caption)}">'
        f'<figcaption>{_e(caption)} (<a href="{_e(urllib.parse.quote(path))}">'
        f"{_e(path)}</a>)</figcaption></figure>"
    )


def _size(n: int) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} bytes"


_CSS = """
:root{--fg:#1d232a;--muted:#66707a;--line:#dde1e6;--head:#f3f5f7;--red:#b42318;
--redbg:#fdecea;--green:#1a7f37;--greenbg:#e9f7ee;--amberbg:#fff4dc}
*{box-sizing:border-box}
body{margin:0 auto;max-width:1200px;padding:20px 28px 40px;color:var(--fg);background:#fff;
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
h1{font-size:22px;margin:0 0 6px}
h2{font-size:18px;margin:30px 0 6px;border-bottom:1px solid var(--line);padding-bottom:4px}
h3{font-size:14px;margin:16px 0 6px;color:var(--muted)}
code,pre{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
pre{background:var(--head);padding:8px;overflow:auto}
.verdict{font-size:16px;font-weight:600;padding:6px 12px;border-radius:6px;display:inline-block}
.verdict.pass{color:var(--green);background:var(--greenbg)}
.verdict.fail{color:var(--red);background:var(--redbg)}
.warn{background:var(--amberbg);border-radius:6px;padding:4px 12px;margin:10px 0}
.note{color:var(--muted);margin:2px 0 8px}
table{border-collapse:collapse;font-size:13px;font-variant-numeric:tabular-nums;margin:4px 0}
th,td{padding:4px 10px;border-bottom:1px solid var(--line);text-align:left}
thead th{background:var(--head)}
table.facts th{color:var(--muted);font-weight:600;background:none}
td.num{text-align:right}
tr.pass td.mark{color:var(--green);font-weight:600}
tr.fail td{background:var(--redbg)}tr.fail td.mark{color:var(--red);font-weight:700}
figure{margin:10px 0 18px}
figure img{max-width:100%;height:auto;display:block;border:1px solid var(--line)}
figcaption{color:var(--muted);font-size:13px;margin-top:4px}
footer{margin-top:30px;color:var(--muted);font-size:12px}
"""


@dataclass(kw_only=True)
class SampleReport(JobReport):
    """What ``dedkit sample`` wrote (``--json``: the fields below, in this order).

    Attributes
    ----------
    folder : str
        The sample folder.
    files : dict
        Name -> size in bytes of each file in it.
    frames : int
        Frames of the counting-camera stack.
    frame_size : list of int
        (ny, nx) of its frames.
    run : dict
        The MÖNCH run: its master files, gain map, energy and numbers of frames.
    """

    folder: str
    files: dict
    frames: int
    frame_size: list
    run: dict

    def to_dict(self) -> dict:
        return self._declared_dict()

    def text(self) -> str:
        lines = [f"dedkit sample: wrote {len(self.files)} files in {self.folder}"]
        lines += [f"  {name:28s} {size / 1e6:8.2f} MB" for name, size in self.files.items()]
        lines.append(f"the examples of README.md and docs/ run in it: cd {self.folder}")
        return "\n".join(lines)


def _block_sum(a: np.ndarray, block: int = BLOCK) -> np.ndarray:
    ny, nx = a.shape
    a = a[: ny - ny % block, : nx - nx % block].astype(float)
    return a.reshape(ny // block, block, nx // block, block).sum(axis=(1, 3))


def _rms_percent(measured: np.ndarray, expected: np.ndarray) -> float:
    return float(100 * np.sqrt(np.mean((measured - expected) ** 2)) / expected.mean())


# -------------------------------------------------------------------------- sample files

#: the example files of README.md and docs/*.md, as ``dedkit sample`` writes them
SAMPLE_NAMES = dict(
    raw="frames.mrc",
    tiff="frames.tif",
    gain="SuperRef.mrc",
    defects="defects.txt",
    mdoc="frames.mrc.mdoc",
)
#: the MÖNCH run: ``run_master_0.json``, ``run_dark_master_0.json``, ``run_gain.npy``...
SAMPLE_RUN = "run"
SAMPLE_RUN_FRAMES = 20
SAMPLE_RUN_DARK_FRAMES = 50
SAMPLE_RUN_FLUX = 10.0
SAMPLE_RUN_ENERGY_KEV = 200.0


def write_samples(folder="dedkit-sample", *, frames: int = 4, seed: int = 1,
                  force: bool = False) -> SampleReport:  # fmt: skip
    """Write the files the guides' examples use into ``folder`` (``dedkit sample``).

    A K3-like counting camera's exposure as SerialEM saves it (``frames.mrc``: 4-bit MRC
    mode 101 with SerialEMCCD's titles and r/f 2; ``frames.tif``: the same frames as
    SerialEMCCD's packed TIFF; ``SuperRef.mrc``, ``defects.txt``, ``frames.mrc.mdoc``),
    and a small MÖNCH run as slsDetector writes it (``run_master_0.json`` with its raw
    files, the dark run ``run_dark_master_0.json``, ``run_gain.npy`` in keV per ADU,
    ``run_truth.h5``), 200 keV electrons on straight tracks (no Geant4 needed: the files
    are for trying the commands, not for physics).

    ``folder`` must not exist or be empty; ``force`` replaces a previous sample (a folder
    dedkit wrote as a sample, holding nothing else), never another folder.

    Returns
    -------
    SampleReport
        ``folder``, ``files`` (name -> bytes), ``frames``, ``frame_size``, ``run``.
    """
    from dedkit.jobs.sim import write_simulated_run
    from dedkit.sim.runs import straight_track_stream

    folder = check_outputs([FolderOutput(folder, SAMPLE_KIND)], force=force)[0]
    rng = np.random.default_rng(seed)
    with atomic_output(folder, kind=SAMPLE_KIND) as tmp:
        run = write_simulated_run(
            tmp, energy_keV=SAMPLE_RUN_ENERGY_KEV, n_frames=SAMPLE_RUN_FRAMES,
            flux=SAMPLE_RUN_FLUX, dark_frames=SAMPLE_RUN_DARK_FRAMES, seed=seed,
            name=SAMPLE_RUN, stream=straight_track_stream,
        )  # fmt: skip
        camera = _write_camera_files(tmp, SAMPLE_NAMES, frames, rng)
        files = {p.name: p.stat().st_size for p in sorted(tmp.iterdir())}
    return SampleReport(
        command="sample",
        folder=str(folder),
        files=files,
        frames=frames,
        frame_size=list(camera.shape),
        run={
            "master": f"{SAMPLE_RUN}_master_0.json",
            "dark_master": f"{SAMPLE_RUN}_dark_master_0.json",
            "gain_keV_per_adu": f"{SAMPLE_RUN}_gain.npy",
            "energy_keV": SAMPLE_RUN_ENERGY_KEV,
            "frames": SAMPLE_RUN_FRAMES,
            "dark_frames": SAMPLE_RUN_DARK_FRAMES,
            "electrons": run.counts["electrons"],
        },
    )

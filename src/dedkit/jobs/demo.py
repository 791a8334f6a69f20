"""``dedkit demo``: the main job end to end on data made on the spot.

A small K3-like super-resolution camera (1/10 of a K3 in each direction) records a
specimen: raw 4-bit counting frames saved as SerialEMCCD saves unnormalised frames (MRC
mode 101, rotated by r/f 2 with the title saying so), with the gain reference and defect
list in camera orientation beside them and an .mdoc. dedkit then normalises the frames
with K3 scaling (x32), orienting the reference and list from the frame title (clip's
``-R -1``), corrects defects, and checks the result against the known truth.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dedkit.frames.rotflip import rotflip
from dedkit.io.atomic import FolderOutput, atomic_output, check_outputs
from dedkit.io.defects import write_defects
from dedkit.io.mdoc import Mdoc, write_mdoc
from dedkit.io.stack import create_stack, open_stack
from dedkit.io.titles import FrameTitleInfo, format_frame_titles
from dedkit.jobs.stacks import normalize_stack
from dedkit.records.defects import DefectList
from dedkit.report import JobReport
from dedkit.sim.counting_raw import gain_nonuniformity, simulate_counting_frames, specimen_image

__all__ = ["DemoSummary", "SampleReport", "run_demo", "write_samples"]

#: physical (sensor) size of the demo camera: a K3 (5760 x 4092) cut by 10 in X and Y
DEMO_PHYSICAL_SIZE = (408, 576)
DEMO_ROTFLIP = 2
K3_SCALE = 32.0
DOSE_PER_FRAME = 0.6  # electrons per super-resolution pixel per frame
BLOCK = 16  # pixels per side of the blocks the flat-field error is measured on


@dataclass(kw_only=True)
class DemoSummary(JobReport):
    """What the demo made and how well normalisation recovered the truth.

    ``defect_error_raw`` / ``defect_error_corrected``: rms difference between the frame
    sum and the dose each defective pixel really received, in units of the mean dose per
    pixel (``mean_dose``, electrons per super-resolution pixel over all frames).
    ``folder`` is None when the files were made in a temporary folder and removed.
    ``--json`` holds the fields declared here, in this order.
    """

    folder: str | None
    frames: int
    frame_size: tuple[int, int]
    raw_file: str
    raw_bytes: int
    gain_file: str
    defects_file: str
    mdoc_file: str
    output_file: str
    output_bytes: int
    normalize_seconds: float
    defect_pixels: int
    saturated: int
    error_raw_percent: float
    error_normalized_percent: float
    counting_noise_percent: float
    mean_dose: float
    defect_error_raw: float
    defect_error_corrected: float

    def to_dict(self) -> dict:
        d = self._declared_dict()
        d["frame_size"] = list(self.frame_size)
        return d

    def text(self) -> str:
        ny, nx = self.frame_size
        where = (
            f"dedkit demo in {self.folder}"
            if self.folder is not None
            else "dedkit demo (its files were made in a temporary folder and removed; "
            "-o DIR keeps them)"
        )
        noise_ratio = 1 / np.sqrt(self.mean_dose)
        return "\n".join(
            [
                where,
                f"  raw frames     {self.raw_file}: {self.frames} x {nx} x {ny} K3-like "
                f"super-resolution counts, 4-bit mode 101, r/f {DEMO_ROTFLIP} "
                f"({self.raw_bytes / 1e6:.2f} MB)",
                f"  gain reference {self.gain_file}, defect list {self.defects_file} "
                f"({self.defect_pixels} defective pixels), {self.mdoc_file}",
                f"  normalised     {self.output_file}: x gain x {K3_SCALE:g}, defects corrected, "
                f"16-bit ({self.output_bytes / 1e6:.2f} MB) in {self.normalize_seconds:.2f} s, "
                f"{self.saturated} values saturated",
                f"  check: the sum of the {self.frames} frames against the dose each pixel "
                f"really received ({self.mean_dose:g} electrons per pixel on average)",
                f"    flat field, rms error on {BLOCK} x {BLOCK} blocks without defects "
                f"(counting noise alone: {self.counting_noise_percent:.1f} %):",
                f"      raw sum        {self.error_raw_percent:6.1f} %",
                f"      normalised sum {self.error_normalized_percent:6.1f} %",
                f"    the {self.defect_pixels} defective pixels, rms error in units of the "
                f"mean dose (counting noise alone: {noise_ratio:.2f}):",
                f"      raw sum        {self.defect_error_raw:6.2f}   (hot and dead pixels)",
                f"      corrected sum  {self.defect_error_corrected:6.2f}   "
                f"(filled from their neighbours)",
            ]
        )


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


def run_demo(folder=None, *, n_frames: int = 8, seed: int = 1, force: bool = False) -> DemoSummary:
    """Make the demo data in ``folder``, normalise it, and measure the result.

    Without ``folder`` the files are made in a temporary folder that is removed at the
    end (issue 13 item 20: each run left 22 MB in /tmp); ``summary.folder`` is then None.
    """
    if folder is None:
        with tempfile.TemporaryDirectory(prefix="dedkit-demo-") as scratch:
            summary = run_demo(Path(scratch) / "demo", n_frames=n_frames, seed=seed)
        summary.folder = None
        return summary
    # an existing empty folder is used; with force only a previous demo folder (one that
    # dedkit wrote and that holds nothing else) is replaced, see dedkit.io.atomic
    folder = check_outputs([FolderOutput(folder, DEMO_KIND)], force=force)[0]
    rng = np.random.default_rng(seed)
    names = dict(
        raw="frames.mrc",
        gain="SuperRef_demo.mrc",
        defects="defects_demo.txt",
        mdoc="frames.mrc.mdoc",
        out="frames_norm.mrc",
    )

    with atomic_output(folder, kind=DEMO_KIND) as tmp:
        tmp.mkdir()
        camera = _write_camera_files(tmp, names, n_frames, rng)
        started = time.perf_counter()
        report = normalize_stack(
            tmp / names["raw"],
            tmp / names["gain"],
            tmp / names["out"],
            scale=K3_SCALE,
            mode="ushort",
            defects=tmp / names["defects"],
            rotflip_value=-1,
        )
        seconds = time.perf_counter() - started
        normalized_sum = np.zeros(camera.shape)
        with open_stack(tmp / names["out"]) as reader:
            for frame in reader:
                normalized_sum += frame
        raw_bytes = (tmp / names["raw"]).stat().st_size
        out_bytes = (tmp / names["out"]).stat().st_size

    raw_sum, image, hot, dead = camera.raw_sum, camera.image, camera.hot, camera.dead
    dose = DOSE_PER_FRAME * n_frames
    expected = image * dose
    bad = hot | dead
    # Flat-field error on 16 x 16 blocks free of defects, where counting noise is small
    # enough for gain non-uniformity to show.
    clean = ~_block_sum(bad).astype(bool)
    expected_blocks = _block_sum(expected)[clean]
    raw_err = _rms_percent(_block_sum(raw_sum)[clean], expected_blocks)
    norm_err = _rms_percent(_block_sum(normalized_sum)[clean] / K3_SCALE, expected_blocks)
    poisson = float(100 * np.sqrt(np.mean(expected_blocks)) / np.mean(expected_blocks))
    return DemoSummary(
        command="demo",
        folder=str(folder),
        frames=n_frames,
        frame_size=camera.shape,
        raw_file=names["raw"],
        raw_bytes=raw_bytes,
        gain_file=names["gain"],
        defects_file=names["defects"],
        mdoc_file=names["mdoc"],
        output_file=names["out"],
        output_bytes=out_bytes,
        normalize_seconds=seconds,
        defect_pixels=int(bad.sum()),
        saturated=report.n_saturated,
        error_raw_percent=raw_err,
        error_normalized_percent=norm_err,
        counting_noise_percent=poisson,
        mean_dose=dose,
        defect_error_raw=float(np.sqrt(np.mean((raw_sum[bad] - expected[bad]) ** 2)) / dose),
        defect_error_corrected=float(
            np.sqrt(np.mean((normalized_sum[bad] / K3_SCALE - expected[bad]) ** 2)) / dose
        ),
    )


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

"""Gold nanoparticles on MÖNCH, end to end: the MÖNCH paper's figure 6, reproducible.

Two jobs, the second one what a user runs on measured data too:

- :func:`simulate_gold_run`: a raw MÖNCH run of a specimen (the HRTEM intensity of
  :mod:`dedkit.jobs.specimen`) imaged at ``pixel_size_A`` per MÖNCH pixel, the specimen
  drifting a few Angstrom over the run, each electron a Geant4 track from a library
  (:mod:`dedkit.jobs.tracks`) placed with a random rotation, through the charge transport
  and MÖNCH response of :mod:`dedkit.sim`: written as ``dedkit sim frames`` writes runs,
  with the truth (every arrival point, on the sensor and on the specimen).
- :func:`process_gold_run`: pedestal -> clusters (the paper's connected finder) ->
  localisation (centroid, eta, CNN; and the truth when the run has one) -> per
  localiser, the drift measured on groups of frames and taken off the events
  (:mod:`dedkit.hpd.motion`) -> a mean-normalised super-resolution sum -> power spectrum,
  radial profile and the ring SNR at the gold {111} (2.355 A) and {200} (2.039 A)
  spacings (:mod:`dedkit.metrics.ring_snr`) -> the SNR as the dose grows (the run's
  first groups of frames, as acquired) and the dose each localiser needs for SNR 5.

:func:`run_gold_demo` joins them for ``dedkit demo hpd``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dedkit.errors import DedkitError
from dedkit.io.atomic import FolderOutput, atomic_output, check_outputs, write_atomic
from dedkit.report import JobReport

__all__ = [
    "DEMO",
    "FULL",
    "GoldAcquisition",
    "GoldReport",
    "process_gold_run",
    "run_gold_demo",
    "simulate_gold_run",
    "specimen_pattern",
    "track_stream",
]

#: kind of folder :func:`process_gold_run` writes (see :mod:`dedkit.io.atomic`)
GOLD_FOLDER_KIND = "gold nanoparticle study"
#: localisers run by default (eta2: the paper's 2x2 eta interpolation)
METHODS = ("centroid", "eta2", "cnn")
#: SNR a ring must reach to count as seen (the dose-to-detection figure)
TARGET_SNR = 5.0
#: rms error of the measured drift the demo accepts: the drift is measured on groups of
#: about one electron per pixel, where the shot noise alone allows 0.2-0.4 A
SHIFT_TOLERANCE_A = 0.5
#: fractions of the run (its first frames) the SNR-versus-dose curve is measured at
DOSE_FRACTIONS = (1 / 256, 1 / 128, 1 / 64, 1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0)


@dataclass(frozen=True)
class GoldAcquisition:
    """How the specimen is recorded and processed.

    Attributes
    ----------
    pixel_size_A : float
        MÖNCH pixel at the specimen, Angstrom (the paper: about 1 A at 150 kX).
    dose_A2 : float
        Electrons per square Angstrom over the run.
    flux : float
        Mean electrons per frame on the sensor (clusters mostly apart).
    drift_A : float
        Path length of the specimen drift over the run, Angstrom.
    group_frames : int
        Frames per group for the motion correction.
    upsample : int
        Super-resolution bins per MÖNCH pixel.
    tracks : int
        Geant4 tracks in the library the electrons are drawn from (0: a fresh Geant4
        electron each).
    dark_frames : int
    """

    pixel_size_A: float = 1.0
    dose_A2: float = 40.0
    flux: float = 300.0
    drift_A: float = 4.0
    group_frames: int = 1000
    upsample: int = 4
    tracks: int = 20000
    dark_frames: int = 1000

    def n_frames(self, shape=(400, 400)) -> int:
        """Frames for the dose on a sensor of ``shape``."""
        area = shape[0] * shape[1] * self.pixel_size_A**2
        return max(int(math.ceil(self.dose_A2 * area / self.flux)), 1)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


#: ``dedkit demo hpd``: a reduced acquisition (minutes on 2 cores)
DEMO = GoldAcquisition(dose_A2=5.0, flux=300.0, group_frames=400, tracks=10000, dark_frames=500)
#: ``dedkit demo --full``: the paper's scale
FULL = GoldAcquisition(dose_A2=40.0, flux=300.0, group_frames=1000, tracks=20000)


@dataclass(kw_only=True)
class GoldReport(JobReport):
    """What :func:`process_gold_run` measured (``details['rings']`` per localiser)."""

    def text(self) -> str:
        lines = [super().text()]
        rings = self.details.get("rings", {})
        if rings:
            first = next(iter(rings.values()))
            spacings = [r["spacing_A"] for r in first["rings"]]
            header = ["localiser", "electrons"] + [f"SNR {d:.3f} A" for d in spacings]
            header += [f"dose for SNR {TARGET_SNR:g}", "drift (A)", "shift error (A)"]
            rows = [header]
            for name, r in rings.items():
                rows.append(
                    [name, str(r["events"])]
                    + [f"{x['snr']:.1f} (noise {x['noise']:.2g})" for x in r["rings"]]
                    + [_dose_text(r), _fmt(r["drift_A"], 2),
                       _fmt(r.get("shift_error_A"), 2)]
                )  # fmt: skip
            widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
            for row in rows:
                lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        return "\n".join(lines)


# --------------------------------------------------------------------------- simulate


def simulate_gold_run(
    output,
    specimen,
    acquisition: GoldAcquisition = DEMO,
    *,
    seed: int = 1,
    workers: int | None = None,
    name: str = "gold",
    force: bool = False,
    progress=None,
    stream=None,
):
    """Simulate the MÖNCH run of a specimen: a raw run as ``dedkit sim frames`` writes it.

    Parameters
    ----------
    output : path-like
        Folder to create.
    specimen : SpecimenImage
        :func:`dedkit.jobs.specimen.specimen_image` (or read with ``read_specimen``): the
        intensity covers the sensor at ``acquisition.pixel_size_A`` plus the drift.
    acquisition : GoldAcquisition
    seed : int
    workers : int, optional
        Geant4 worker processes for the track library.
    name : str
        Run name.
    force : bool
    progress : callable(done, total), optional
        Frames written.
    stream : callable, optional
        Replaces the track library (tests: :func:`dedkit.sim.runs.straight_track_stream`).

    Returns
    -------
    SimReport
        With ``details['drift_px']`` the path and ``details['acquisition']``.
    """
    from dedkit.jobs.sim import write_simulated_run

    n_frames = acquisition.n_frames((400, 400))
    pattern = specimen_pattern(
        specimen, acquisition.pixel_size_A, acquisition.drift_A, n_frames, seed=seed
    )
    if stream is None and acquisition.tracks:
        stream = track_stream(acquisition.tracks, seed=seed, workers=workers)
    report = write_simulated_run(
        output,
        energy_keV=200.0,
        n_frames=n_frames,
        flux=acquisition.flux,
        pattern=pattern,
        dark_frames=acquisition.dark_frames,
        seed=seed,
        workers=workers,
        name=name,
        force=force,
        progress=progress,
        stream=stream,
    )
    report.details["acquisition"] = acquisition.to_dict()
    report.details["drift_px"] = report.details["pattern"]["drift_path_px"]
    return report


def specimen_pattern(
    specimen, pixel_size_A: float, drift_A: float, n_frames: int, *, seed: int = 1,
    shape=(400, 400),
):  # fmt: skip
    """The beam pattern of a specimen imaged at ``pixel_size_A`` per sensor pixel,
    drifting ``drift_A`` (path length) over ``n_frames`` (:func:`dedkit.sim.beam.drift_trajectory`
    from ``seed``, centred on its mean position).

    Examples
    --------
    >>> import numpy as np
    >>> from dedkit.sim.specimen import Microscope, SpecimenImage, SpecimenSpec
    >>> spec = SpecimenImage(np.ones((2200, 2200), np.float32), 0.2, SpecimenSpec(),
    ...                      Microscope(), {})
    >>> pattern = specimen_pattern(spec, 1.0, 4.0, 1000)
    >>> pattern.kind, pattern.image_pixel_px, pattern.drift_px.shape
    ('specimen', 0.2, (1000, 2))
    """
    from dedkit.sim.beam import BeamPattern, drift_trajectory
    from dedkit.sim.runs import chunk_rng

    pixel_size_A = float(pixel_size_A)
    if not (math.isfinite(pixel_size_A) and pixel_size_A > 0):
        raise DedkitError(f"the pixel size must be a positive number of A, got {pixel_size_A}")
    drift = drift_trajectory(n_frames, float(drift_A) / pixel_size_A, chunk_rng(seed, 11, 0))
    pattern = BeamPattern(
        "specimen",
        image=specimen.intensity,
        image_pixel_px=float(specimen.sampling_A) / pixel_size_A,
        drift_px=drift - drift.mean(axis=0),
    )
    pattern.check_covers(shape)
    return pattern


def track_stream(
    n_tracks: int, *, energy_keV: float = 200.0, seed: int = 1, workers=None, progress=None
):
    """The electrons' stream from a (cached) library of ``n_tracks`` Geant4 tracks
    (:func:`dedkit.jobs.tracks.track_library`)."""
    from dedkit.jobs.tracks import track_library
    from dedkit.sim.tracks import library_stream

    return library_stream(
        track_library(
            float(energy_keV), int(n_tracks), seed=seed, workers=workers, progress=progress
        )
    )


# ---------------------------------------------------------------------------- process


@dataclass
class _Localised:
    """One localiser's events, motion and image."""

    name: str
    events: object
    motion: object = None
    image: np.ndarray | None = None
    rings: list = field(default_factory=list)
    curve: tuple = ((), ())
    dose_for_target: float = float("nan")
    dose_extrapolated: bool = False
    shift_error_px: float | None = None
    n_events: int = 0


def _crop_box(shape, upsample: int, margin_px: float) -> tuple[slice, slice]:
    # the part of the super-resolution image every group covers: the drift leaves the
    # edges with fewer electrons (and the corrected image with a step there)
    m = int(math.ceil(margin_px * upsample)) + upsample
    rows, cols = shape[0] * upsample, shape[1] * upsample
    return slice(m, rows - m), slice(m, cols - m)


def _mean_normalised(image: np.ndarray) -> np.ndarray:
    mean = float(image.mean())
    if not mean > 0:
        raise DedkitError("the image holds no electrons")
    return (image / mean).astype(np.float32)


def _truth_drift(truth, first_frame: int, group_frames: int, n_groups: int) -> np.ndarray:
    # the true displacement of each group: the mean sensor-minus-specimen position of
    # its electrons (the estimated shifts are compared up to a constant)
    from dedkit.hpd.motion import group_of_frames

    group = group_of_frames(truth.frame, first_frame, group_frames)
    keep = (group >= 0) & (group < n_groups)
    count = np.bincount(group[keep], minlength=n_groups)
    out = np.zeros((n_groups, 2))
    for k, (x, origin) in enumerate(((truth.x, "specimen_x"), (truth.y, "specimen_y"))):
        total = np.bincount(
            group[keep], weights=(x - truth.extra[origin])[keep], minlength=n_groups
        )
        np.divide(total, count, out=out[:, k], where=count > 0)
    return out


def _shift_error(estimated: np.ndarray, true: np.ndarray) -> float:
    # both trajectories up to a constant (the sum's reference is arbitrary)
    diff = (estimated - estimated.mean(axis=0)) - (true - true.mean(axis=0))
    return float(np.sqrt(np.mean(np.sum(diff**2, axis=1))))


def _read_events(path, *, group=None):
    from dedkit.io.events import read_table

    return read_table(path, group=group, kind="events")


def process_gold_run(
    master,
    dark_master,
    gain,
    output,
    *,
    pixel_size_A: float,
    group_frames: int,
    upsample: int = 4,
    methods=METHODS,
    truth=None,
    spacings_A=None,
    bfactor: float = 1000.0,
    max_shift_px: float = 30.0,
    workers: int | None = None,
    force: bool = False,
    progress=None,
) -> GoldReport:
    """From a raw MÖNCH run of a crystalline specimen to motion-corrected super-resolution
    images and their ring SNRs, for each localiser (see the module).

    Parameters
    ----------
    master, dark_master : path-like
        Master files of the run and of its dark run.
    gain : path-like
        Gain map (keV per ADU, ``.npy``).
    output : path-like
        Folder to create: ``image_METHOD.mrc`` (aligned mean-normalised sums, pixel size in
        A), ``events_METHOD.h5``, ``shifts_METHOD.csv``, ``rings.json``, ``figure6.png``,
        ``dose_snr.png``, ``radial.png``, ``PED.h5``, ``clusters.h5``.
    pixel_size_A : float
        MÖNCH pixel at the specimen, Angstrom.
    group_frames : int
        Frames per group of the motion correction.
    upsample : int
        Super-resolution bins per pixel.
    methods : sequence of str
        Localisers (``centroid``, ``eta2``, ``eta3``, ``cnn``).
    truth : path-like, optional
        A simulated run's ``NAME_truth.h5``: its arrival points are processed as one more
        localiser, 'truth' (the upper bound), and every localiser's shifts are compared
        with the true drift.
    spacings_A : sequence of float, optional
        Ring spacings (default gold {111} and {200}).
    bfactor : float
        Low-pass of the group correlations, square detector pixels (1000: features of
        10-20 pixels, the particles' outlines). The group images hold about one electron
        per pixel, so the shifts are shot-noise limited: on the demo's run (5 e/A2, 7
        groups of 400 frames) the rms error against the true drift was 0.26 A from the
        arrival points and 0.36 A from the CNN's positions at B 1000, 0.32 / 0.59 A at
        B 300.
    max_shift_px : float
        Largest drift searched between a group and the sum of the others, detector
        pixels (a specimen drifts a few A over a run; a larger peak is noise).
    workers : int, optional
        Cluster finding: Dask LocalCluster processes (default one per core, 0 in this
        process).
    force : bool
    progress : callable(done, total), optional
        One bar over all the steps (0..1000).

    Returns
    -------
    GoldReport
    """
    output = Path(output)
    inputs = [master, dark_master, gain] + ([truth] if truth is not None else [])
    check_outputs([FolderOutput(output, GOLD_FOLDER_KIND)], inputs, force)
    started = time.perf_counter()
    with atomic_output(output, kind=GOLD_FOLDER_KIND) as tmp:
        tmp.mkdir()
        report = process_into(
            tmp, master, dark_master, gain, pixel_size_A=pixel_size_A,
            group_frames=group_frames, upsample=upsample, methods=methods, truth=truth,
            spacings_A=spacings_A, bfactor=bfactor, max_shift_px=max_shift_px,
            workers=workers, progress=progress,
            final=output,
        )  # fmt: skip
    report.output = str(output)
    report.seconds = time.perf_counter() - started
    return report


def process_into(
    folder,
    master,
    dark_master,
    gain,
    *,
    pixel_size_A: float,
    group_frames: int,
    upsample: int = 4,
    methods=METHODS,
    truth=None,
    spacings_A=None,
    bfactor: float = 1000.0,
    max_shift_px: float = 30.0,
    workers: int | None = None,
    progress=None,
    final=None,
) -> GoldReport:
    """:func:`process_gold_run` into an existing folder (``final``: where the folder will
    be once published, for the paths the report names)."""
    from dedkit.hpd.motion import corrected_image, estimate_event_motion
    from dedkit.jobs.hpd import (
        compute_pedestal,
        find_clusters_in_run,
        localize_clusters,
        write_image,
    )
    from dedkit.metrics.ring_snr import AU_111_A, AU_200_A, radial_profile, ring_snr

    started = time.perf_counter()
    folder = Path(folder)
    final = Path(final) if final is not None else folder
    pixel_size_A = float(pixel_size_A)
    if not (math.isfinite(pixel_size_A) and 0 < pixel_size_A < 1e4):
        raise DedkitError(f"the pixel size must be a positive number of A, got {pixel_size_A}")
    spacings = tuple(spacings_A) if spacings_A is not None else (AU_111_A, AU_200_A)
    methods = tuple(methods)
    weights = {"pedestal": 1.0, "clusters": 6.0}
    weights.update({m: 4.0 if m == "cnn" else 1.0 for m in methods})
    weights["images"] = 1.5 * (len(methods) + int(truth is not None))
    weights["figures"] = 0.5
    steps = _Steps(progress, weights)
    # every input read (and refused, in one line) before the long steps start
    from dedkit.jobs.hpd import describe_run

    shape = tuple(int(v) for v in describe_run(master)["shape"])
    describe_run(dark_master)
    if truth is not None:
        from dedkit.io.events import table_length

        table_length(truth, group="truth", kind="events")
    pixel = pixel_size_A / upsample
    for d in spacings:
        if not 0 < d or 1.03 / d >= 0.5 / pixel:
            raise DedkitError(
                f"a ring at {d:g} A lies beyond the Nyquist frequency of {pixel:g} A pixels "
                f"(--pixel-size {pixel_size_A:g} / --upsample {upsample}); the smallest "
                f"spacing these images show is {2.06 * pixel:.3g} A"
            )

    compute_pedestal(dark_master, folder / "PED.h5", progress=steps.sub("pedestal"))
    clusters = find_clusters_in_run(
        master, folder / "PED.h5", folder / "clusters.h5", finder="connected", gain=gain,
        beam_energy_keV=200.0, workers=workers, progress=steps.sub("clusters"),
    )  # fmt: skip
    localised: list[_Localised] = []
    for method in methods:
        localize_clusters(
            folder / "clusters.h5", folder / f"events_{method}.h5", method=method,
            progress=steps.sub(method),
        )  # fmt: skip
        localised.append(_Localised(method, _read_events(folder / f"events_{method}.h5")))
    truth_table = None
    if truth is not None:
        truth_table = _read_events(truth, group="truth")
        localised.append(_Localised("truth", truth_table))
    found = [loc for loc in localised if len(loc.events)]
    if not found:
        raise DedkitError("no electrons were found in the run", path=master)
    first_frame = int(min(int(np.min(loc.events.frame)) for loc in found))
    last_frame = int(max(int(np.max(loc.events.frame)) for loc in found))
    n_groups = (last_frame - first_frame) // int(group_frames) + 1
    _check_groups(n_groups, shape, group_frames, master)
    area_A2 = shape[0] * shape[1] * pixel_size_A**2
    warnings = []
    true_drift = None
    if truth_table is not None:
        true_drift = _truth_drift(truth_table, first_frame, group_frames, n_groups)
    for loc in localised:
        loc.motion = estimate_event_motion(
            loc.events, shape, group_frames=group_frames, first_frame=first_frame,
            n_groups=n_groups, bfactor=bfactor, max_shift=max_shift_px,
        )  # fmt: skip
        if true_drift is not None:
            loc.shift_error_px = _shift_error(loc.motion.shifts, true_drift)
        sparse = _sparse_groups(loc, shape)
        if sparse:
            warnings.append(sparse)
    # one box for every localiser, so that their SNRs are measured on the same area
    margin = max(float(np.abs(loc.motion.shifts - loc.motion.shifts.mean(axis=0)).max())
                 for loc in localised)  # fmt: skip
    box = _crop_box(shape, upsample, margin + 1.0)
    # the dose curve's points: the run's first frames (each count once); the drift of
    # every frame is known from the whole run's measurement
    n_frames = last_frame - first_frame + 1
    used_frames = sorted({max(int(round(f * n_frames)), 1) for f in DOSE_FRACTIONS})
    for k, loc in enumerate(localised):
        full = corrected_image(loc.events, shape, upsample, loc.motion)
        loc.image = _mean_normalised(full[box])
        loc.rings = [ring_snr(loc.image, pixel, d) for d in spacings]
        # the SNR as the dose grows: the run's first groups, as acquired; the dose is the
        # incident electrons (the truth's, when known, else this localiser's events) per
        # square Angstrom
        doses, snrs = [], []
        frame = np.asarray(loc.events.frame) - first_frame
        reference = truth_table if truth_table is not None else loc.events
        ref_frame = np.asarray(reference.frame) - first_frame
        for used in used_frames:
            part = loc.events[frame < used]
            if len(part) < 100:
                continue
            image = corrected_image(part, shape, upsample, loc.motion)[box]
            if not image.mean() > 0:
                continue
            doses.append(float(np.count_nonzero(ref_frame < used)) / area_A2)
            snrs.append(ring_snr(_mean_normalised(image), pixel, spacings[0]).snr)
        loc.curve = (doses, snrs)
        from dedkit.metrics.ring_snr import dose_for_snr_detail

        if doses:
            fit = dose_for_snr_detail(doses, snrs, TARGET_SNR)
            loc.dose_for_target, loc.dose_extrapolated = float(fit.dose), bool(fit.extrapolated)
        write_image(folder / f"image_{loc.name}.mrc", loc.image, pixel_size=pixel)
        _write_shifts(folder / f"shifts_{loc.name}.csv", loc.motion, pixel_size_A)
        # the events are not needed any more (the truth's are, for the others' errors)
        loc.n_events = len(loc.events)
        if loc.name != "truth":
            loc.events = None
        steps.done("images", k + 1, len(localised))
    from dedkit.jobs.figures_gold import dose_figure, gold_figure, radial_figure
    from dedkit.metrics.ring_snr import power_spectrum

    names = [loc.name for loc in localised]
    from scipy.ndimage import gaussian_filter

    gold_figure(
        {loc.name: loc.image for loc in localised},
        # shown smoothed over a few Fourier pixels, as one looks at a spectrum for rings:
        # the single coefficients are exponentially distributed noise
        {loc.name: gaussian_filter(power_spectrum(loc.image), 2.0) for loc in localised},
        {loc.name: loc.rings for loc in localised},
        pixel,
        folder / "figure6.png",
    )
    dose_figure(
        {loc.name: loc.curve for loc in localised}, TARGET_SNR, folder / "dose_snr.png",
        dose_for={loc.name: loc.dose_for_target for loc in localised},
    )  # fmt: skip
    radial_figure(
        {loc.name: radial_profile(loc.image, pixel) for loc in localised},
        list(spacings),
        folder / "radial.png",
        fmax=0.8,
    )
    results = {loc.name: _summary(loc, pixel_size_A) for loc in localised}
    record = {
        "pixel_size_A": pixel,
        "detector_pixel_size_A": pixel_size_A,
        "upsample": upsample,
        "group_frames": int(group_frames),
        "groups": n_groups,
        "frames": last_frame - first_frame + 1,
        "image_shape": list(localised[0].image.shape),
        "dose": "incident electrons per A2 (the truth's)"
        if truth_table is not None
        else "detected electrons per A2 (each localiser's events)",
        "target_snr": TARGET_SNR,
        "spacings_A": list(spacings),
        "localisers": results,
    }
    write_atomic(folder / "rings.json", (json.dumps(record, indent=1) + "\n").encode())
    steps.done("figures", 1, 1)
    counts = {"clusters": int(clusters.counts.get("clusters", 0)) if clusters.counts else 0}
    for loc in localised:
        counts[f"events_{loc.name}"] = loc.n_events
    return GoldReport(
        "gold",
        [str(p) for p in (master, dark_master, gain, truth) if p is not None],
        str(final),
        time.perf_counter() - started,
        counts,
        {"rings": results, "names": names, "files": sorted(p.name for p in folder.iterdir())},
        warnings,
    )


#: electrons per pixel a group image needs for its drift to be measured at all (the
#: demo's groups hold about 0.7; below 0.05 the correlation peak is lost in the noise)
MIN_ELECTRONS_PER_PIXEL = 0.05
#: largest stack of group images (float32 bytes) the motion correction makes
MAX_GROUP_STACK_BYTES = 4 * 2**30


def _check_groups(n_groups: int, shape, group_frames: int, master) -> None:
    stack = n_groups * shape[0] * shape[1] * 4
    if stack > MAX_GROUP_STACK_BYTES:
        raise DedkitError(
            f"{n_groups} groups of {group_frames} frames would need "
            f"{stack / 2**30:.1f} GiB of group images; use a larger --group",
            path=master,
        )


def _sparse_groups(loc, shape) -> str | None:
    per_pixel = float(np.median(loc.motion.events)) / (shape[0] * shape[1])
    if per_pixel >= MIN_ELECTRONS_PER_PIXEL:
        return None
    return (
        f"{loc.name}: the groups hold {per_pixel:.3f} electrons per pixel (median), too few "
        f"to measure the drift (at least {MIN_ELECTRONS_PER_PIXEL:g}); use a larger --group"
    )


class _Steps:
    """One progress bar (0..1000) over named steps, each weighted by its usual share of
    the time, so that ``progress(done, total)`` of a plain bar moves smoothly."""

    def __init__(self, progress, weights: dict):
        self.progress = progress
        total = sum(weights.values())
        self.start, acc = {}, 0.0
        for name, w in weights.items():
            self.start[name] = (acc / total, w / total)
            acc += w

    def sub(self, name: str, *, announce: bool = True):
        if self.progress is None:
            return None
        start, share = self.start[name]

        def report(done, total):
            fraction = start + share * (done / total if total else 1.0)
            self.progress(int(round(1000 * min(fraction, 1.0))), 1000)

        if announce:
            report(0, 1)
        return report

    def done(self, name: str, done: int, total: int) -> None:
        report = self.sub(name, announce=False)
        if report is not None:
            report(done, total)


def _summary(loc: _Localised, pixel_size_A: float) -> dict:
    out = {
        "events": loc.n_events,
        "rings": [
            {
                "spacing_A": r.spacing_A,
                "snr": r.snr,
                "excess": r.excess,
                "noise": r.noise,
                "background": r.background,
                "n_coefficients": r.n_coefficients,
                "method": r.method,
            }
            for r in loc.rings
        ],
        "dose_for_snr_A2": loc.dose_for_target,
        # beyond the largest dose measured: a line through the origin, shot noise assumed
        "dose_for_snr_extrapolated": loc.dose_extrapolated,
        "snr_versus_dose": {"dose_A2": list(loc.curve[0]), "snr": list(loc.curve[1])},
        "drift_A": loc.motion.total_drift() * pixel_size_A,
    }
    if loc.shift_error_px is not None:
        out["shift_error_A"] = loc.shift_error_px * pixel_size_A
    return out


def _write_shifts(path, motion, pixel_size_A: float) -> None:
    lines = ["group,first_frame,events,dx_px,dy_px,dx_A,dy_A"]
    for g, (dx, dy) in enumerate(motion.shifts):
        first = motion.first_frame + g * motion.group_frames
        lines.append(
            f"{g},{first},{int(motion.events[g])},{dx:.4f},{dy:.4f},"
            f"{dx * pixel_size_A:.4f},{dy * pixel_size_A:.4f}"
        )
    write_atomic(path, ("\n".join(lines) + "\n").encode())


# ------------------------------------------------------------------------------- demo


def _demo_specimen_spec(acquisition: GoldAcquisition, seed: int):
    from dedkit.sim.specimen import SpecimenSpec

    # the sensor (400 pixels) plus the drift and a margin on each side; particles on a
    # fifth to a third of the area as in the paper's figure, half of them on a zone
    # axis: the drift is measured on the particles, and the ring is theirs
    field_A = 400 * acquisition.pixel_size_A + 2 * acquisition.drift_A + 8.0
    return SpecimenSpec(field_A=field_A, coverage=0.3, zone_axis_fraction=0.5, seed=seed)


def prepare_gold_demo(*, full: bool = False, seed: int = 1) -> None:
    """Compute (and cache) what :func:`run_gold_demo` starts from: the specimen's HRTEM
    image and the Geant4 track library. ``dedkit demo`` runs this in a second process
    while the camera part runs, so that both cores work on a first run."""
    from dedkit.jobs.specimen import specimen_image
    from dedkit.jobs.tracks import track_library
    from dedkit.sim.specimen import Microscope

    acquisition = FULL if full else DEMO
    specimen_image(_demo_specimen_spec(acquisition, seed), Microscope())
    track_library(200.0, acquisition.tracks, seed=seed)


def run_gold_demo(folder, *, full: bool = False, seed: int = 1, progress=None):
    """``dedkit demo hpd``: the gold-nanoparticle acquisition simulated, then processed
    as measured data are, into ``folder`` (which exists).

    The specimen (:func:`dedkit.jobs.specimen.specimen_image`) and the track library are
    cached, so a second run starts at the acquisition. The raw run is written in a
    temporary folder inside ``folder`` and removed once processed (it is large; its
    truth is kept as ``truth.h5``); :func:`process_gold_run` writes the rest.

    Parameters
    ----------
    folder : path-like
    full : bool
        The paper's scale (:data:`FULL`) instead of the reduced demo (:data:`DEMO`).
    seed : int
    progress : callable(done, total), optional

    Returns
    -------
    DemoPart
    """
    import shutil

    from dedkit.jobs.demo_part import DemoCheck, DemoPart
    from dedkit.jobs.specimen import specimen_image
    from dedkit.sim.specimen import Microscope

    started = time.perf_counter()
    folder = Path(folder)
    acquisition = FULL if full else DEMO
    steps = _Steps(progress, {"specimen": 1, "tracks": 1, "acquisition": 4, "processing": 6})
    sub = steps.sub

    spec = _demo_specimen_spec(acquisition, seed)
    microscope = Microscope()
    specimen = specimen_image(spec, microscope, progress=sub("specimen"))
    stream = track_stream(acquisition.tracks, seed=seed, progress=sub("tracks"))
    # a run left by an interrupted demo is replaced (force) only if it is dedkit's
    run = folder / f".run-{seed}"
    sim = simulate_gold_run(
        run, specimen, acquisition, seed=seed, name="gold", force=True,
        progress=sub("acquisition"), stream=stream,
    )  # fmt: skip
    try:
        truth = folder / "truth.h5"
        from dedkit.io.atomic import publish, temporary_sibling

        staged = temporary_sibling(truth)
        shutil.copyfile(run / "gold_truth.h5", staged)
        publish(staged, truth)
        report = process_into(
            folder, run / "gold_master_0.json", run / "gold_dark_master_0.json",
            run / "gold_gain.npy", pixel_size_A=acquisition.pixel_size_A,
            group_frames=acquisition.group_frames, upsample=acquisition.upsample,
            truth=truth, progress=sub("processing"),
        )  # fmt: skip
    finally:
        _remove_run(run)
    rings = report.details["rings"]
    return _demo_part(
        DemoPart, DemoCheck, folder, rings, acquisition, sim, specimen, spec, microscope,
        time.perf_counter() - started, full,
    )  # fmt: skip


def _remove_run(run: Path) -> None:
    # the raw run dedkit simulated for the demo (gigabytes): removed once processed, after
    # checking it still holds only what dedkit wrote
    import shutil

    from dedkit.io.atomic import check_replaceable
    from dedkit.jobs.sim import RUN_FOLDER_KIND

    if run.exists():
        check_replaceable(run, RUN_FOLDER_KIND)
        shutil.rmtree(run)


def _dose_text(r: dict) -> str:
    dose = r["dose_for_snr_A2"]
    if dose is None or not math.isfinite(dose):
        return "not reached"
    if r.get("dose_for_snr_extrapolated"):
        return f"~{dose:.3g} (extrapolated)"
    return f"{dose:.3g}"


def _fmt(value, digits=1) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _demo_part(DemoPart, DemoCheck, folder, rings, acquisition, sim, specimen, spec,
               microscope, seconds, full):  # fmt: skip
    names = [n for n in ("truth", "cnn", "eta2", "centroid") if n in rings]
    snr = {n: rings[n]["rings"][0]["snr"] for n in names}
    snr200 = {n: rings[n]["rings"][1]["snr"] for n in names if len(rings[n]["rings"]) > 1}
    rows = []
    for n in names:
        r = rings[n]
        rows.append({
            "localiser": n,
            "electrons": r["events"],
            "SNR 2.355 A {111}": _fmt(snr[n]),
            "SNR 2.039 A {200}": _fmt(snr200.get(n)),
            f"dose for SNR {TARGET_SNR:g} (e/A2)": _dose_text(r),
            "shift error (A)": _fmt(r.get("shift_error_A"), 2),
        })  # fmt: skip
    checks = [
        DemoCheck(
            "CNN shows the gold {111} ring (2.355 A)",
            f"SNR {_fmt(snr.get('cnn'))}",
            f">= {TARGET_SNR:g}",
            bool(snr.get("cnn", -math.inf) >= TARGET_SNR),
        ),
        DemoCheck(
            "charge centroid does not",
            f"SNR {_fmt(snr.get('centroid'))}",
            f"< {TARGET_SNR:g}",
            bool(snr.get("centroid", math.inf) < TARGET_SNR),
        ),
        DemoCheck(
            "motion correction (CNN events) follows the true drift",
            f"{_fmt(rings.get('cnn', {}).get('shift_error_A'), 2)} A rms",
            f"< {SHIFT_TOLERANCE_A:g} A",
            bool(rings.get("cnn", {}).get("shift_error_A", math.inf) < SHIFT_TOLERANCE_A),
        ),
    ]
    dose = acquisition.dose_A2
    figures = {
        "Mean-normalised super-resolution images and their power spectra, one column per "
        "localiser (the MÖNCH paper's figure 6), gold {111} and {200} rings marked": "figure6.png",
        f"Ring SNR at 2.355 A as the dose grows; dashed: SNR {TARGET_SNR:g}": "dose_snr.png",
        "Radial power profiles": "radial.png",
    }
    files = {
        "aligned, mean-normalised super-resolution sum (centroid)": "image_centroid.mrc",
        "aligned, mean-normalised super-resolution sum (CNN)": "image_cnn.mrc",
        "events of each localiser": "events_cnn.h5",
        "ring SNRs, dose curves, shifts per localiser": "rings.json",
        "truth: every simulated electron": "truth.h5",
    }
    files = {k: v for k, v in files.items() if (Path(folder) / v).exists()}
    details = {
        "acquisition": acquisition.to_dict(),
        "specimen": spec.to_dict(),
        "microscope": microscope.to_dict(),
        "electrons": sim.counts.get("electrons"),
        "frames": sim.counts.get("frames"),
        "dose_A2": dose,
        "full": bool(full),
        "rings": rings,
        "command": "dedkit demo hpd" + (" --full" if full else ""),
    }
    title = (
        f"200 keV, {acquisition.pixel_size_A:g} A per pixel, "
        f"{dose:g} e/A2 in {sim.counts.get('frames')} frames, drift {acquisition.drift_A:g} A"
    )
    return DemoPart(
        name="hpd", title=title, rows=rows, checks=checks, figures=figures, files=files,
        seconds=seconds, details=details,
    )  # fmt: skip

"""The gold-on-carbon specimen's HRTEM image as a job: cached on disk, written as MRC with
its parameters (``dedkit sim specimen``), read back (or any user-made image) for the
MÖNCH acquisition.

The multislice calculation (:func:`dedkit.sim.specimen.hrtem_intensity`) takes seconds to
minutes; :func:`specimen_image` keeps its result in :func:`dedkit.jobs.cache.cache_dir`
keyed by the specimen, the microscope, the multislice settings and the abTEM and ase
versions, so a second run with the same parameters reads it back.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dedkit.errors import DedkitError
from dedkit.io.atomic import StagedOutputs, check_outputs, write_atomic
from dedkit.report import JobReport
from dedkit.sim.specimen import (
    CARBON_SLICE_A,
    POTENTIAL_SAMPLING_A,
    SLICE_A,
    Microscope,
    SpecimenImage,
    SpecimenSpec,
)

__all__ = [
    "SpecimenReport",
    "make_specimen",
    "read_specimen",
    "sidecar_path",
    "specimen_image",
    "write_specimen",
]

#: version of the specimen model (bump when build_specimen or hrtem_intensity change
#: what they compute for the same parameters: it is part of the cache key)
MODEL_VERSION = 2
_PARTICLE_KEYS = ("x_A", "y_A", "z_A", "diameter_nm", "zone_axis", "n_atoms", "rotation")


def _versions() -> dict:
    import abtem
    import ase

    return {"abtem": abtem.__version__, "ase": ase.__version__}


def _cache_key(spec: SpecimenSpec, microscope: Microscope) -> dict:
    return {
        "spec": spec.to_dict(),
        "microscope": microscope.to_dict(),
        "model": MODEL_VERSION,
        "potential_sampling_A": POTENTIAL_SAMPLING_A,
        "slice_A": SLICE_A,
        "carbon_slice_A": CARBON_SLICE_A,
        **_versions(),
    }


def specimen_image(spec: SpecimenSpec | None = None, microscope: Microscope | None = None,
                   *, cache: bool = True, progress=None) -> SpecimenImage:  # fmt: skip
    """:func:`~dedkit.sim.specimen.hrtem_intensity` of ``spec`` under ``microscope``,
    computed once and then read from the disk cache.

    Parameters
    ----------
    spec : SpecimenSpec, optional
        The specimen (default ``SpecimenSpec()``).
    microscope : Microscope, optional
        The imaging conditions (default ``Microscope()``).
    cache : bool
        False: compute, neither reading nor writing the cache.
    progress : callable, optional
        ``progress(done, total)`` while abTEM computes (``(1, 1)`` on a cache hit).

    Returns
    -------
    SpecimenImage
        ``details["cache_hit"]`` says whether it was read from the cache.

    Examples
    --------
    >>> import os
    >>> os.environ["DEDKIT_CACHE"] = "cache"
    >>> spec = SpecimenSpec(field_A=40, sampling_A=0.4, diameter_nm=(1.5, 2.0), carbon_nm=1)
    >>> first = specimen_image(spec)
    >>> again = specimen_image(spec)
    >>> first.details["cache_hit"], again.details["cache_hit"]
    (False, True)
    >>> bool((first.intensity == again.intensity).all())
    True
    >>> del os.environ["DEDKIT_CACHE"]
    """
    from dedkit.sim.specimen import hrtem_intensity

    spec = SpecimenSpec() if spec is None else spec
    microscope = Microscope() if microscope is None else microscope
    if not cache:
        image = hrtem_intensity(spec, microscope, progress=progress)
        image.details["cache_hit"] = False
        return image
    from dedkit.jobs.cache import cache_path, cached_npz

    key = _cache_key(spec, microscope)
    computed = []

    def make():
        image = hrtem_intensity(spec, microscope, progress=progress)
        computed.append(True)
        arrays = {"intensity": image.intensity, "details": np.asarray(json.dumps(image.details))}
        arrays.update({f"particle_{k}": np.asarray(v) for k, v in image.particles.items()})
        return arrays

    arrays = cached_npz("specimen", key, make, progress=progress)
    particles = {k: arrays[f"particle_{k}"] for k in _PARTICLE_KEYS if f"particle_{k}" in arrays}
    details = json.loads(str(arrays["details"]))
    details.update(cache_hit=not computed, cache_file=str(cache_path("specimen", key)))
    intensity = np.asarray(arrays["intensity"], np.float32)
    return SpecimenImage(intensity, spec.sampling_A, spec, microscope, particles, details)


def sidecar_path(path) -> Path:
    """The JSON file beside a specimen image: ``PATH.json`` (``gold.mrc.json``).

    Examples
    --------
    >>> sidecar_path("gold.mrc").name
    'gold.mrc.json'
    """
    path = Path(path)
    return path.with_name(path.name + ".json")


def _sidecar(image: SpecimenImage) -> dict:
    return {
        "kind": "dedkit specimen",
        "sampling_A": image.sampling_A,
        "shape": list(image.intensity.shape),
        "spec": None if image.spec is None else image.spec.to_dict(),
        "microscope": None if image.microscope is None else image.microscope.to_dict(),
        "particles": {k: np.asarray(v).tolist() for k, v in image.particles.items()},
        "details": {k: v for k, v in image.details.items() if k != "cache_file"},
    }


def write_specimen(path, image: SpecimenImage, force: bool = False, *, inputs=()) -> Path:
    """Write a specimen image as a float32 MRC (pixel size in A in the header, row 0
    stored first) and its parameters as ``PATH.json``, both renamed into place together.

    Parameters
    ----------
    path : path-like
        The ``.mrc`` (or ``.tif``) file.
    image : SpecimenImage
        The image.
    force : bool
        Replace existing files.
    inputs : iterable of path-like
        Files read by the run, which may not be replaced.

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> image = SpecimenImage(np.ones((8, 8), np.float32), 0.25, None, None, {})
    >>> write_specimen("flat.mrc", image).name
    'flat.mrc'
    >>> read_specimen("flat.mrc").sampling_A
    0.25
    """
    from dedkit.io.stack import create_stack

    path = Path(path)
    sidecar = sidecar_path(path)
    check_outputs([path, sidecar], inputs, force)
    intensity = np.asarray(image.intensity, np.float32)
    if intensity.ndim != 2:
        raise DedkitError(f"a specimen image must be 2-D, got shape {intensity.shape}", path=path)
    staged = StagedOutputs()
    try:
        with create_stack(
            staged.temporary(path), (1, *intensity.shape), np.float32,
            pixel_size=image.sampling_A, titles=["dedkit specimen (HRTEM intensity, mean 1)"],
        ) as writer:  # fmt: skip
            writer.write(intensity)
        text = json.dumps(_sidecar(image), indent=1, default=float) + "\n"
        write_atomic(staged.temporary(sidecar), text, record=False)
        staged.commit()
    except BaseException:
        staged.discard()
        raise
    return path


def read_specimen(path) -> SpecimenImage:
    """Read a specimen image: one written by :func:`write_specimen` (with its parameters
    from ``PATH.json``) or any single-image MRC/TIFF file that records its pixel size.

    Parameters
    ----------
    path : path-like
        The image file.

    Returns
    -------
    SpecimenImage
        The intensity as float32 divided by its mean; ``spec`` and ``microscope`` None
        without a sidecar.

    Raises
    ------
    DedkitError
        Not one image, no pixel size in the header, a non-positive mean, or a sidecar that
        does not match.

    Examples
    --------
    >>> image = SpecimenImage(np.full((8, 8), 2, np.float32), 0.5, None, None, {})
    >>> _ = write_specimen("flat.mrc", image)
    >>> back = read_specimen("flat.mrc")
    >>> back.sampling_A, float(back.intensity.mean())
    (0.5, 1.0)
    """
    from dedkit.io.inputs import check_input_path
    from dedkit.io.stack import open_stack

    path = check_input_path(path, "specimen image")
    with open_stack(path) as stack:
        if len(stack) != 1:
            raise DedkitError(f"expected one image, found {len(stack)} frames", path=path)
        pixel = stack.info.pixel_size
        data = np.asarray(stack.read(0), np.float64)
    if pixel is None or not pixel[0] > 0:
        raise DedkitError("no pixel size in the header: a specimen image needs one", path=path)
    if pixel[1] and abs(pixel[1] - pixel[0]) > 1e-4 * pixel[0]:
        raise DedkitError(f"pixels are not square ({pixel[0]:g} x {pixel[1]:g} A)", path=path)
    if not np.isfinite(data).all():
        raise DedkitError("the image holds NaN or infinite values", path=path)
    mean = float(data.mean())
    if not mean > 0:
        raise DedkitError(f"an intensity image needs a positive mean, not {mean:g}", path=path)
    intensity = (data / mean).astype(np.float32)
    sampling = round(float(pixel[0]), 6)
    spec = microscope = None
    particles, details = {}, {}
    sidecar = sidecar_path(path)
    if sidecar.exists():
        try:
            meta = json.loads(sidecar.read_text())
            if list(meta["shape"]) != list(intensity.shape):
                raise ValueError(f"shape {meta['shape']} is not the image's")
            if meta.get("spec"):
                s = dict(meta["spec"])
                s["diameter_nm"] = tuple(s["diameter_nm"])
                spec = SpecimenSpec(**s)
            if meta.get("microscope"):
                microscope = Microscope(**meta["microscope"])
            particles = {k: np.asarray(v) for k, v in meta.get("particles", {}).items()}
            if "zone_axis" in particles:
                particles["zone_axis"] = particles["zone_axis"].astype(bool)
            details = dict(meta.get("details", {}))
        except (ValueError, KeyError, TypeError, DedkitError) as e:
            raise DedkitError(f"not a specimen sidecar: {' '.join(str(e).split())}",
                              path=sidecar) from None  # fmt: skip
    return SpecimenImage(intensity, sampling, spec, microscope, particles, details)


@dataclass
class SpecimenReport(JobReport):
    """The report of ``dedkit sim specimen`` (one summary line)."""

    def text(self) -> str:
        d = self.details
        return (
            f"specimen: wrote {self.output} in {self.seconds:.1f} s: field {d['field_A']:g} A "
            f"at {d['sampling_A']:g} A/pixel ({d['shape'][1]} x {d['shape'][0]}), "
            f"{self.counts['particles']} particles ({self.counts['zone_axis']} on <110>), "
            f"cache {'hit' if d['cache_hit'] else 'miss'}"
        )


def make_specimen(output, spec: SpecimenSpec | None = None,
                  microscope: Microscope | None = None, *, preview=None, force: bool = False,
                  cache: bool = True, announce=None, progress=None) -> SpecimenReport:  # fmt: skip
    """Compute (or read from the cache) a specimen image and write it (``dedkit sim
    specimen``).

    Parameters
    ----------
    output : path-like
        The ``.mrc`` to write (and ``OUTPUT.json`` beside it).
    spec, microscope : SpecimenSpec, Microscope, optional
        The specimen and imaging conditions (default: the defaults of their classes).
    preview : path-like, optional
        A PNG of the image and its power spectrum (needs matplotlib).
    force : bool
        Replace existing outputs.
    cache : bool
        Use the disk cache.
    announce : callable, optional
        ``announce(message)`` before abTEM runs (not on a cache hit).
    progress : callable, optional
        ``progress(done, total)``.

    Returns
    -------
    SpecimenReport

    Examples
    --------
    >>> import os
    >>> os.environ["DEDKIT_CACHE"] = "cache"
    >>> spec = SpecimenSpec(field_A=40, sampling_A=0.4, diameter_nm=(1.5, 2.0), carbon_nm=1)
    >>> report = make_specimen("gold.mrc", spec)
    >>> report.details["shape"], report.counts["particles"] >= 1
    ([100, 100], True)
    >>> del os.environ["DEDKIT_CACHE"]
    """
    start = time.perf_counter()
    spec = SpecimenSpec() if spec is None else spec
    microscope = Microscope() if microscope is None else microscope
    output = Path(output)
    check_outputs([output, sidecar_path(output)], (), force, figures=[preview])
    if announce is not None and cache:
        from dedkit.jobs.cache import cache_path

        if not cache_path("specimen", _cache_key(spec, microscope)).exists():
            announce(_announcement(spec))
    elif announce is not None:
        announce(_announcement(spec))
    image = specimen_image(spec, microscope, cache=cache, progress=progress)
    write_specimen(output, image, force=force)
    if preview is not None:
        write_preview(preview, image)
    return SpecimenReport(
        "specimen",
        output=str(output),
        seconds=time.perf_counter() - start,
        counts={"particles": len(image.particles["x_A"]), "zone_axis": image.n_zone_axis},
        details={
            "field_A": image.field_A,
            "sampling_A": image.sampling_A,
            "shape": list(image.intensity.shape),
            "cache_hit": image.details["cache_hit"],
            "compute_seconds": image.details.get("seconds"),
            "spec": spec.to_dict(),
            "microscope": microscope.to_dict(),
            "preview": None if preview is None else str(preview),
        },
    )


def _announcement(spec: SpecimenSpec) -> str:
    return (
        f"computing the HRTEM image with abTEM (multislice, {spec.field_A:g} A field; "
        "kept in the cache for the next run)"
    )


def write_preview(path, image: SpecimenImage) -> Path:
    """A PNG of the specimen image and its power spectrum (log), the Au {111} and {200}
    frequencies marked.

    Examples
    --------
    >>> image = SpecimenImage(np.random.default_rng(1).random((64, 64)), 0.2, None, None, {})
    >>> write_preview("preview.png", image).read_bytes()[:4]
    b'\\x89PNG'
    """
    from matplotlib.figure import Figure

    from dedkit.io.figures import save_figure

    data = np.asarray(image.intensity, np.float64)
    spectrum = np.abs(np.fft.fftshift(np.fft.fft2(data - data.mean()))) ** 2
    nyquist = 0.5 / image.sampling_A
    fig = Figure(figsize=(9, 4.6))
    left, right = fig.subplots(1, 2)
    extent = [0, data.shape[1] * image.sampling_A, data.shape[0] * image.sampling_A, 0]
    left.imshow(data, cmap="gray", extent=extent)
    left.set(title="HRTEM intensity (mean 1)", xlabel="x (A)", ylabel="y (A)")
    limit = min(nyquist, 0.7)
    floor = 1e-12 * spectrum.max() + 1e-30
    right.imshow(np.log10(spectrum + floor), cmap="magma", interpolation="nearest",
                 extent=[-nyquist, nyquist, nyquist, -nyquist])  # fmt: skip
    from matplotlib.patches import Circle

    for d, colour in ((2.355, "cyan"), (2.039, "lime")):
        right.add_patch(Circle((0, 0), 1 / d, fill=False, ls="--", lw=0.8, color=colour,
                               label=f"{d} A"))  # fmt: skip
    right.set(xlim=(-limit, limit), ylim=(limit, -limit), title="power spectrum (log)",
              xlabel="1/A")  # fmt: skip
    right.legend(loc="upper right", fontsize=7)
    return save_figure(fig, path, dpi=100)

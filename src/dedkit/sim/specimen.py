"""Gold nanoparticles on amorphous carbon and their 200 keV HRTEM image (the specimen of
the MÖNCH paper's figure 6).

:func:`build_specimen` builds the atoms with ``ase``: Au fcc particles (a = 4.078 A) of
diameters drawn uniformly in a range until the projected gold area reaches the asked
coverage, each a sphere cut from the crystal, at random orientations except for a
fraction put with a <110> axis along the beam (z) and a random rotation about it, so that
their {111} (2.355 A) and {200} (2.039 A) fringes show; the particles do not overlap in
projection and sit on a film of amorphous carbon. The film is a random, not relaxed,
network: carbon atoms at uniformly random positions at the density of amorphous carbon
(2.0 g/cm^3), which gives the right mean projected potential and a speckle-like random
phase, not the carbon's true short-range order.

:func:`hrtem_intensity` propagates a plane wave through the atoms with abTEM's
multislice (``abtem`` 1.0, numpy on the CPU), applies the objective lens (defocus, Cs,
aperture, partial coherence by focal spread and beam divergence in the quasi-coherent
envelopes) and returns the bright-field intensity resampled to the asked pixel size,
normalised to mean 1. Both need the ``specimen`` extra (``ase``, ``abtem``).

The microscope's defaults (:class:`Microscope`) are those of a 200 keV FEG TEM set up for
lattice images of gold: Cs 1.2 mm and an underfocus of 33 nm, which puts the {111} and
{200} spacings in one passband of the CTF (sin chi = -0.96 at 2.355 A and -1.00 at
2.039 A, envelopes 0.90 and 0.80), a 15 mrad objective aperture (admits 1.67 A), focal
spread 3.5 nm and beam semiangle 0.15 mrad. :func:`ctf_value` gives the damped CTF at any
spacing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from dedkit.errors import DedkitError

__all__ = [
    "AU_LATTICE_A",
    "CARBON_DENSITY_G_CM3",
    "POTENTIAL_SAMPLING_A",
    "SLICE_A",
    "CARBON_SLICE_A",
    "Microscope",
    "SpecimenImage",
    "SpecimenSpec",
    "build_specimen",
    "ctf_value",
    "hrtem_intensity",
]

#: Au fcc lattice parameter, A
AU_LATTICE_A = 4.078
#: density of the amorphous carbon film, g/cm^3
CARBON_DENSITY_G_CM3 = 2.0
#: pixel size of the projected potential and the exit wave, A (multislice grid): its
#: anti-aliasing limit, 2/3 of Nyquist, is 3.3 1/A (84 mrad at 200 keV), far beyond the
#: objective aperture, and it resolves the gold potential's core well enough for the
#: lattice image's contrast
POTENTIAL_SAMPLING_A = 0.1
#: multislice slice thickness through the gold, A
SLICE_A = 2.0
#: slice thickness through the carbon film, A: a weak phase object, for which thicker
#: slices cost little accuracy and save a quarter of the time of the full field
CARBON_SLICE_A = 10.0
#: gap left between particles (in projection), A
_GAP_A = 4.0
_AVOGADRO = 6.02214076e23
_CARBON_MOLAR_G = 12.011


@dataclass(frozen=True)
class SpecimenSpec:
    """What is on the grid: gold nanoparticles on an amorphous carbon film.

    Attributes
    ----------
    field_A : float
        Side of the square specimen area, A (the MÖNCH's 400 A at 1 A/pixel and a drift
        margin by default).
    sampling_A : float
        A per pixel of the HRTEM intensity (at most 1.0 to carry the 2.04 A fringes).
    diameter_nm : tuple of float
        Range of the particles' diameters, nm (drawn uniformly).
    coverage : float
        Projected area fraction covered by gold (reached as closely as whole particles
        allow; fewer when they do not fit).
    zone_axis_fraction : float
        Fraction of the particles put with a <110> axis along the beam (rounded; at
        least one when positive).
    carbon_nm : float
        Thickness of the carbon film, nm (0: none).
    seed : int
        Random seed: with the other fields it fixes the specimen.

    Examples
    --------
    >>> spec = SpecimenSpec(field_A=60, diameter_nm=(1.5, 2.5))
    >>> spec.to_dict()["diameter_nm"]
    [1.5, 2.5]
    >>> SpecimenSpec(sampling_A=2.0)
    Traceback (most recent call last):
    ...
    dedkit.errors.DedkitError: sampling 2 A is too coarse: at most 1 A to carry the 2.04 A fringes
    """

    field_A: float = 420.0
    sampling_A: float = 0.2
    diameter_nm: tuple[float, float] = (2.0, 10.0)
    coverage: float = 0.15
    zone_axis_fraction: float = 0.3
    carbon_nm: float = 3.0
    seed: int = 1

    def __post_init__(self):
        lo, hi = (float(d) for d in self.diameter_nm)
        object.__setattr__(self, "diameter_nm", (lo, hi))
        if not 0 < self.sampling_A <= 1.0:
            raise DedkitError(
                f"sampling {self.sampling_A:g} A is too coarse: at most 1 A to carry the "
                "2.04 A fringes"
                if self.sampling_A > 1
                else f"sampling must be positive, not {self.sampling_A:g} A"
            )
        if not 0 < lo <= hi:
            raise DedkitError(f"diameter range {lo:g},{hi:g} nm: need 0 < MIN <= MAX")
        if hi * 10 + 2 * _GAP_A > self.field_A:
            raise DedkitError(
                f"field {self.field_A:g} A is too small for particles of {hi:g} nm "
                f"(at least {hi * 10 + 2 * _GAP_A:g} A)"
            )
        if self.field_A / self.sampling_A > 8192:
            raise DedkitError(
                f"field {self.field_A:g} A at {self.sampling_A:g} A per pixel is more than "
                "8192 pixels across"
            )
        if not 0 <= self.coverage <= 0.6:
            raise DedkitError(f"coverage {self.coverage:g}: need 0 to 0.6")
        if not 0 <= self.zone_axis_fraction <= 1:
            raise DedkitError(f"zone-axis fraction {self.zone_axis_fraction:g}: need 0 to 1")
        if not 0 <= self.carbon_nm <= 50:
            raise DedkitError(f"carbon thickness {self.carbon_nm:g} nm: need 0 to 50 nm")

    @property
    def n(self) -> int:
        """Pixels along each side of the intensity image."""
        return int(round(self.field_A / self.sampling_A))

    def to_dict(self) -> dict:
        """The fields as JSON-able values."""
        d = asdict(self)
        d["diameter_nm"] = list(self.diameter_nm)
        return d


@dataclass(frozen=True)
class Microscope:
    """How the specimen is imaged: a 200 keV FEG TEM set for lattice images of gold.

    The default underfocus (33 nm with Cs 1.2 mm) is not Scherzer's (63 nm, whose
    passband ends at 2.45 A) but the next defocus at which the {111} (2.355 A) and
    {200} (2.039 A) spacings fall into one passband of sin chi; see :func:`ctf_value`.

    Attributes
    ----------
    energy_keV : float
        Beam energy, keV.
    defocus_A : float
        Defocus, A; positive is underfocus (abTEM's convention, ``defocus = -C10``).
    cs_mm : float
        Spherical aberration, mm.
    aperture_mrad : float
        Objective aperture semiangle, mrad (15 mrad admits 1.67 A at 200 keV).
    focal_spread_A : float
        Focal spread (1/e half-width as abTEM uses it), A: partial temporal coherence.
    semiangle_mrad : float
        Beam convergence semiangle, mrad: partial spatial coherence.

    Examples
    --------
    >>> Microscope().to_dict()["defocus_A"]
    330.0
    """

    energy_keV: float = 200.0
    defocus_A: float = 330.0
    cs_mm: float = 1.2
    aperture_mrad: float = 15.0
    focal_spread_A: float = 35.0
    semiangle_mrad: float = 0.15

    def __post_init__(self):
        if not 20 <= self.energy_keV <= 1000:
            raise DedkitError(f"energy {self.energy_keV:g} keV: need 20 to 1000 keV")
        if self.aperture_mrad <= 0:
            raise DedkitError(f"aperture must be positive, not {self.aperture_mrad:g} mrad")
        if self.focal_spread_A < 0 or self.semiangle_mrad < 0:
            raise DedkitError("focal spread and semiangle must not be negative")
        if self.cs_mm < 0:
            raise DedkitError(f"Cs must not be negative, not {self.cs_mm:g} mm")

    def to_dict(self) -> dict:
        """The fields as JSON-able values."""
        return asdict(self)

    @property
    def wavelength_A(self) -> float:
        """Relativistic electron wavelength, A."""
        return _wavelength_A(self.energy_keV)


@dataclass
class SpecimenImage:
    """A specimen's bright-field HRTEM intensity and what made it.

    Attributes
    ----------
    intensity : numpy.ndarray
        (n, n) float32, mean 1; row 0 first, x along columns, ``sampling_A`` per pixel.
    sampling_A : float
        A per pixel.
    spec : SpecimenSpec or None
        The specimen (None for an image read from a user's file).
    microscope : Microscope or None
        The imaging conditions (None for an image read from a user's file).
    particles : dict
        Arrays, one entry per particle: ``x_A``, ``y_A`` (centre in the image), ``z_A``,
        ``diameter_nm``, ``zone_axis`` (bool), ``n_atoms``, ``rotation`` (n, 3, 3): the
        crystal-to-specimen rotation matrices.
    details : dict
        How it was computed (multislice grid, slices, atom counts, seconds).

    Examples
    --------
    >>> import numpy as np
    >>> image = SpecimenImage(np.ones((4, 4), np.float32), 0.2, None, None, {})
    >>> image.field_A
    0.8
    """

    intensity: np.ndarray
    sampling_A: float
    spec: SpecimenSpec | None
    microscope: Microscope | None
    particles: dict
    details: dict = field(default_factory=dict)

    @property
    def field_A(self) -> float:
        """Side of the image, A."""
        return round(self.intensity.shape[-1] * self.sampling_A, 6)

    @property
    def n_zone_axis(self) -> int:
        """Particles on a <110> zone axis."""
        return int(np.count_nonzero(self.particles.get("zone_axis", ())))


def _wavelength_A(energy_keV: float) -> float:
    """Relativistic electron wavelength in A (h c = 12.3984 keV A, m c^2 = 510.999 keV)."""
    e = energy_keV
    return 12.398419843 / math.sqrt(e * (2 * 510.99895 + e))


def ctf_value(spacing_A: float, microscope: Microscope = Microscope()) -> dict:
    """The objective lens's transfer at one lattice spacing: sin chi, the partial
    coherence envelopes and their product.

    With abTEM's conventions, chi(k) = pi lambda k^2 (0.5 Cs lambda^2 k^2 - defocus);
    the temporal envelope exp(-(pi lambda D k^2)^2 / 4) (focal spread D), the spatial
    envelope exp(-(alpha / lambda)^2 (d chi / d k / 2)^2) (semiangle alpha): the quasi-coherent
    forms abTEM's CTF multiplies in.

    Parameters
    ----------
    spacing_A : float
        Lattice spacing d, A (k = 1/d).
    microscope : Microscope
        The imaging conditions.

    Returns
    -------
    dict
        ``sin_chi``, ``temporal``, ``spatial``, ``damped`` (sin chi times both envelopes),
        ``in_aperture`` (bool).

    Examples
    --------
    >>> v = ctf_value(2.355)
    >>> round(v["sin_chi"], 2), round(v["damped"], 2)
    (-0.96, -0.87)
    >>> round(ctf_value(2.039)["damped"], 2)
    -0.8
    """
    lam = microscope.wavelength_A
    k = 1.0 / spacing_A
    cs = microscope.cs_mm * 1e7
    df = microscope.defocus_A
    chi = math.pi * lam * k**2 * (0.5 * cs * lam**2 * k**2 - df)
    temporal = math.exp(-0.25 * (math.pi * lam * microscope.focal_spread_A * k**2) ** 2)
    alpha = microscope.semiangle_mrad * 1e-3
    gradient = 2 * math.pi * (cs * lam**3 * k**3 - df * lam * k)  # d chi / d k times lambda
    spatial = math.exp(-((alpha / (2 * lam)) ** 2) * gradient**2)
    in_aperture = lam * k <= microscope.aperture_mrad * 1e-3
    return {
        "sin_chi": math.sin(chi),
        "temporal": temporal,
        "spatial": spatial,
        "damped": math.sin(chi) * temporal * spatial * float(in_aperture),
        "in_aperture": in_aperture,
    }


# ----- the atoms --------------------------------------------------------------------------


def _fcc_sphere(radius_A: float, rng) -> np.ndarray:
    """Atom positions (n, 3) of an fcc sphere in the crystal frame, centred on 0, the
    lattice shifted by a random vector (so that the centre is not always an atom)."""
    a = AU_LATTICE_A
    m = int(math.ceil(radius_A / a)) + 1
    r = np.arange(-m, m + 1, dtype=np.float64)
    cells = np.stack(np.meshgrid(r, r, r, indexing="ij"), axis=-1).reshape(-1, 1, 3)
    basis = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    points = ((cells + basis[None]).reshape(-1, 3) + rng.uniform(0, 1, 3)) * a
    return points[np.einsum("ij,ij->i", points, points) <= radius_A**2]


def _zone_axis_rotation(rng) -> np.ndarray:
    """A rotation taking the crystal's [110] onto z, then a random angle about z."""
    from scipy.spatial.transform import Rotation

    # [110] -> z, with [001] -> x (the {111} planes then lie along the image's y)
    axes = np.array([[0, 0, 1], [1, -1, 0], [1, 1, 0]], dtype=np.float64)
    to_beam = axes / np.linalg.norm(axes, axis=1, keepdims=True)
    about_z = Rotation.from_euler("z", rng.uniform(0, 2 * math.pi)).as_matrix()
    return about_z @ to_beam


def _place(spec: SpecimenSpec, rng):
    """Particle diameters (nm) and centres (A), largest first, none overlapping."""
    lo, hi = spec.diameter_nm
    target = spec.coverage * spec.field_A**2
    diameters, area = [], 0.0
    while area < target:
        d = rng.uniform(lo, hi)
        a = math.pi * (5 * d) ** 2
        if area + a > target and (area + a - target) > (target - area):
            break
        diameters.append(d)
        area += a
    diameters.sort(reverse=True)
    placed_d, placed_xy = [], []
    for d in diameters:
        r = 5 * d
        low, high = r + _GAP_A / 2, spec.field_A - r - _GAP_A / 2
        for _ in range(500):
            xy = rng.uniform(low, high, 2)
            if all(
                math.hypot(*(xy - q)) >= r + 5 * e + _GAP_A
                for e, q in zip(placed_d, placed_xy, strict=True)
            ):
                placed_d.append(d)
                placed_xy.append(xy)
                break
    return np.array(placed_d, np.float64), np.array(placed_xy, np.float64).reshape(-1, 2)


def build_specimen(spec: SpecimenSpec):
    """The atoms of ``spec``: gold particles resting on an amorphous carbon film.

    The beam enters at z = 0 and travels along +z; the particles come first and touch
    the film's top surface (their lowest atom 1.5 A above it). The cell is periodic in x
    and y (the film wraps round; the particles lie wholly inside). Carbon atoms are
    placed at uniformly random positions at 2.0 g/cm^3: a random, not relaxed, network.

    Parameters
    ----------
    spec : SpecimenSpec
        The specimen.

    Returns
    -------
    ase.Atoms
        Gold atoms tagged with their particle's number from 1, carbon tagged 0;
        ``atoms.info["particles"]`` holds the particle table (see
        :attr:`SpecimenImage.particles`) and ``atoms.info["film_z_A"]`` the film's top
        and bottom.

    Examples
    --------
    >>> atoms = build_specimen(SpecimenSpec(field_A=50, diameter_nm=(1.5, 2.0), carbon_nm=1))
    >>> sorted(set(atoms.get_chemical_symbols()))
    ['Au', 'C']
    >>> len(atoms.info["particles"]["x_A"]) >= 1
    True
    """
    import ase

    rng = np.random.default_rng([spec.seed, 17])
    diameters, centres = _place(spec, rng)
    n = len(diameters)
    # at least one on the zone axis when any is asked for (a small field holds few)
    n_zone = int(round(spec.zone_axis_fraction * n))
    if spec.zone_axis_fraction > 0 and n > 0:
        n_zone = max(n_zone, 1)
    zone = np.zeros(n, bool)
    zone[rng.permutation(n)[:n_zone]] = True
    from scipy.spatial.transform import Rotation

    film_top = (diameters.max() * 10 if n else 0.0) + 3.0
    film_bottom = film_top + spec.carbon_nm * 10
    positions, tags, rotations, z_centres, counts = [], [], [], [], []
    for i in range(n):
        rotation = (
            _zone_axis_rotation(rng)
            if zone[i]
            else Rotation.random(random_state=rng.integers(2**32)).as_matrix()
        )
        atoms = _fcc_sphere(5 * diameters[i], rng) @ rotation.T
        z_shift = film_top - 1.5 - atoms[:, 2].max()
        atoms += [centres[i, 0], centres[i, 1], z_shift]
        positions.append(atoms)
        tags.append(np.full(len(atoms), i + 1))
        rotations.append(rotation)
        z_centres.append(z_shift)
        counts.append(len(atoms))
    n_gold = int(sum(counts))
    volume_A3 = spec.field_A**2 * spec.carbon_nm * 10
    per_A3 = CARBON_DENSITY_G_CM3 / _CARBON_MOLAR_G * _AVOGADRO * 1e-24
    n_carbon = int(rng.poisson(volume_A3 * per_A3)) if spec.carbon_nm > 0 else 0
    carbon = rng.uniform(
        [0, 0, film_top], [spec.field_A, spec.field_A, max(film_bottom, film_top)], (n_carbon, 3)
    )
    positions.append(carbon)
    tags.append(np.zeros(n_carbon, int))
    numbers = np.concatenate([np.full(n_gold, 79), np.full(n_carbon, 6)])
    atoms = ase.Atoms(
        numbers=numbers,
        positions=np.concatenate(positions) if positions else np.zeros((0, 3)),
        cell=[spec.field_A, spec.field_A, film_bottom + 2.0],
        pbc=[True, True, False],
        tags=np.concatenate(tags).astype(int),
    )
    atoms.info["particles"] = {
        "x_A": centres[:, 0].copy(),
        "y_A": centres[:, 1].copy(),
        "z_A": np.array(z_centres, np.float64),
        "diameter_nm": diameters,
        "zone_axis": zone,
        "n_atoms": np.array(counts, np.int64),
        "rotation": np.array(rotations, np.float64).reshape(n, 3, 3),
    }
    atoms.info["film_z_A"] = (film_top, film_bottom)
    return atoms


# ----- the image --------------------------------------------------------------------------


def _fourier_resample(image: np.ndarray, n: int) -> np.ndarray:
    """Resample a periodic (N, N) image to (n, n) by cropping its spectrum (n <= N), the
    mean kept."""
    big = image.shape[0]
    if n == big:
        return image
    f = np.fft.fftshift(np.fft.fft2(image))
    c, h = big // 2, n // 2
    f = f[c - h : c - h + n, c - h : c - h + n]
    return np.fft.ifft2(np.fft.ifftshift(f)).real * (n * n) / (big * big)


class _DaskProgress:
    """A dask callback reporting finished tasks as ``progress(done, total)``."""

    def __init__(self, progress):
        from dask.callbacks import Callback

        owner = self

        class _Callback(Callback):
            def _start_state(self, dsk, state):
                owner.total = max(len(state["ready"]) + len(state["waiting"]), 1)
                owner.done = 0
                progress(0, owner.total)

            def _posttask(self, key, result, dsk, state, worker_id):
                owner.done += 1
                progress(min(owner.done, owner.total), owner.total)

        self.callback = _Callback()
        self.total = 1
        self.done = 0


def hrtem_intensity(spec: SpecimenSpec, microscope: Microscope = Microscope(), *,
                    progress=None) -> SpecimenImage:  # fmt: skip
    """The bright-field HRTEM image of ``spec`` under ``microscope`` (abTEM multislice).

    A plane wave at ``energy_keV`` is propagated through the projected potential (Lobato
    parametrisation, ``infinite`` projection: each atom's potential projected whole into
    the slice holding its centre) on a :data:`POTENTIAL_SAMPLING_A` grid in slices of
    :data:`SLICE_A` through the particles and :data:`CARBON_SLICE_A` through the film;
    the exit wave goes through the objective lens (abTEM's ``CTF``: defocus, Cs, a soft
    aperture, focal spread and beam divergence as envelopes) and its intensity (vacuum 1)
    is resampled to ``spec.sampling_A`` by cropping its spectrum (exact: the aperture
    bounds it far below the output's Nyquist) and divided by its mean.

    abTEM's import and the first compilation of its numba functions take 10-25 s of each
    new process; the multislice itself takes seconds for a 170 A field and minutes for
    420 A (docs/simulation.md gives the timings).

    Parameters
    ----------
    spec : SpecimenSpec
        The specimen (built with :func:`build_specimen`).
    microscope : Microscope
        The imaging conditions.
    progress : callable, optional
        ``progress(done, total)`` over abTEM's tasks.

    Returns
    -------
    SpecimenImage

    Examples
    --------
    >>> spec = SpecimenSpec(field_A=40, sampling_A=0.4, diameter_nm=(1.5, 2.0), carbon_nm=1)
    >>> image = hrtem_intensity(spec)
    >>> image.intensity.shape, round(float(image.intensity.mean()), 4)
    ((100, 100), 1.0)
    """
    import time

    start = time.perf_counter()
    atoms = build_specimen(spec)
    import abtem

    n = spec.n
    # the multislice grid: a whole multiple of the output's, at least as fine as
    # POTENTIAL_SAMPLING_A
    factor = max(1, int(math.ceil(spec.sampling_A / POTENTIAL_SAMPLING_A - 1e-9)))
    gpts = n * factor
    extent = n * spec.sampling_A
    atoms.set_cell([extent, extent, atoms.cell[2, 2]])
    film_top = atoms.info["film_z_A"][0]
    n_gold = max(1, int(math.ceil(film_top / SLICE_A - 1e-9)))
    carbon = atoms.cell[2, 2] - film_top
    n_carbon = max(1, int(math.ceil(carbon / CARBON_SLICE_A - 1e-9)))
    slices = (film_top / n_gold,) * n_gold + (carbon / n_carbon,) * n_carbon
    from dedkit.threads import thread_count

    # the multislice is FFTs: FFTW's threads use every core dedkit may use; its plans are
    # estimated, not measured, so that the same specimen gives the same image run after
    # run (measured plans pick algorithms by timing, whose roundings differ by 1e-5, and
    # electrons drawn from the image then land elsewhere)
    settings = {
        "diagnostics.progress_bar": False,
        "device": "cpu",
        "fftw.threads": thread_count(),
        "fftw.planning_effort": "FFTW_ESTIMATE",
    }
    with abtem.config.set(settings):
        potential = abtem.Potential(
            atoms,
            gpts=gpts,
            slice_thickness=slices,
            parametrization="lobato",
            projection="infinite",
        )
        wave = abtem.PlaneWave(energy=microscope.energy_keV * 1e3)
        exit_wave = wave.multislice(potential)
        ctf = abtem.CTF(
            semiangle_cutoff=microscope.aperture_mrad,
            focal_spread=microscope.focal_spread_A,
            angular_spread=microscope.semiangle_mrad,
            defocus=microscope.defocus_A,
            Cs=microscope.cs_mm * 1e7,
            energy=microscope.energy_keV * 1e3,
        )
        image = exit_wave.apply_ctf(ctf).intensity()
        if progress is None:
            array = image.compute(scheduler="synchronous").array
        else:
            with _DaskProgress(progress).callback:
                array = image.compute(scheduler="synchronous").array
    array = np.asarray(array, np.float64).reshape(gpts, gpts)
    vacuum_mean = float(array.mean())
    array = _fourier_resample(array, n)
    # abTEM's first axis is x: rows are y in dedkit's images
    intensity = (array / array.mean()).T.astype(np.float32)
    particles = dict(atoms.info["particles"])
    tags = atoms.get_tags()
    details = {
        "multislice_sampling_A": extent / gpts,
        "multislice_gpts": gpts,
        "slice_A": SLICE_A,
        "carbon_slice_A": CARBON_SLICE_A,
        "slices": int(len(potential)),
        "parametrization": "lobato",
        "projection": "infinite",
        "abtem": abtem.__version__,
        "n_gold": int(np.count_nonzero(tags > 0)),
        "n_carbon": int(np.count_nonzero(tags == 0)),
        "mean_before_normalising": vacuum_mean,
        "coverage": float(np.sum(np.pi * (5 * particles["diameter_nm"]) ** 2) / extent**2),
        "seconds": time.perf_counter() - start,
    }
    return SpecimenImage(intensity, spec.sampling_A, spec, microscope, particles, details)

"""Issue 17: the gold-on-carbon specimen (ase) and its HRTEM image (abTEM multislice)."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("ase")

from dedkit.errors import DedkitError  # noqa: E402
from dedkit.sim.specimen import (  # noqa: E402
    AU_LATTICE_A,
    CARBON_DENSITY_G_CM3,
    Microscope,
    SpecimenSpec,
    build_specimen,
    ctf_value,
)

SMALL = SpecimenSpec(field_A=60, diameter_nm=(2.0, 3.0), coverage=0.3, zone_axis_fraction=0.5,
                     carbon_nm=1.0, seed=3)  # fmt: skip


GOLD_FREQUENCIES = (1 / 2.355, 1 / 2.039)


def fringe_ratio(image: np.ndarray, sampling_A: float, spacing_A: float, half_width=0.02):
    """Mean power in the annulus 1/spacing +- half_width over the mean power in the
    neighbouring annuli (out to 3 half-widths on either side), leaving out what lies within
    0.035 1/A of the other gold ring (its peaks' tails: a 3 nm particle broadens them by
    ~0.03 1/A)."""
    data = image - image.mean()
    power = np.abs(np.fft.fft2(data)) ** 2
    fy = np.fft.fftfreq(data.shape[0], sampling_A)[:, None]
    fx = np.fft.fftfreq(data.shape[1], sampling_A)[None, :]
    radius = np.hypot(fy, fx)
    f = 1.0 / spacing_A
    ring = np.abs(radius - f) <= half_width
    near = (np.abs(radius - f) > half_width) & (np.abs(radius - f) <= 3 * half_width)
    for other in GOLD_FREQUENCIES:
        if abs(other - f) > 1e-6:
            near &= np.abs(radius - other) > 0.035
    return power[ring].mean() / power[near].mean()


@pytest.fixture(scope="module")
def atoms():
    return build_specimen(SMALL)


def test_gold_has_the_fcc_nearest_neighbour_distance(atoms):
    from scipy.spatial import cKDTree

    gold = atoms.positions[atoms.get_tags() == 1]
    distance, _ = cKDTree(gold).query(gold, k=2)
    assert np.median(distance[:, 1]) == pytest.approx(AU_LATTICE_A / math.sqrt(2), abs=1e-6)


def test_particles_in_range_inside_the_field_and_apart(atoms):
    p = atoms.info["particles"]
    n = len(p["x_A"])
    assert n >= 2
    assert ((p["diameter_nm"] >= 2.0) & (p["diameter_nm"] <= 3.0)).all()
    tags = atoms.get_tags()
    for i in range(n):
        xyz = atoms.positions[tags == i + 1]
        assert len(xyz) == p["n_atoms"][i] > 0
        # every atom within the particle's radius of its centre (in projection)
        r = np.hypot(xyz[:, 0] - p["x_A"][i], xyz[:, 1] - p["y_A"][i])
        assert r.max() <= 5 * p["diameter_nm"][i] + 1e-6
        assert xyz[:, :2].min() >= 0 and xyz[:, :2].max() <= SMALL.field_A
        for j in range(i):
            gap = math.hypot(p["x_A"][i] - p["x_A"][j], p["y_A"][i] - p["y_A"][j])
            assert gap >= 5 * (p["diameter_nm"][i] + p["diameter_nm"][j])
    # the number of atoms of a sphere of gold (4 atoms per a^3)
    volume = 4 / 3 * np.pi * (5 * p["diameter_nm"]) ** 3
    assert p["n_atoms"] == pytest.approx(4 * volume / AU_LATTICE_A**3, rel=0.15)


def test_zone_axis_particles_are_on_110(atoms):
    p = atoms.info["particles"]
    zone = p["zone_axis"]
    assert zone.any() and not zone.all()
    tags = atoms.get_tags()
    for i in np.flatnonzero(zone):
        beam = p["rotation"][i] @ np.array([1.0, 1.0, 0.0]) / math.sqrt(2)
        assert abs(beam[2]) == pytest.approx(1.0, abs=1e-9)
        # atoms stack in columns along z: few distinct (x, y)
        xy = atoms.positions[tags == i + 1][:, :2]
        columns = np.unique(np.round(xy / 0.01).astype(np.int64), axis=0)
        assert len(columns) < len(xy) / 3
    for i in np.flatnonzero(~zone):
        xy = atoms.positions[tags == i + 1][:, :2]
        assert len(np.unique(np.round(xy / 0.01).astype(np.int64), axis=0)) > len(xy) / 2


def test_particles_sit_on_the_carbon_film(atoms):
    top, bottom = atoms.info["film_z_A"]
    carbon = atoms.positions[atoms.get_tags() == 0]
    assert bottom - top == pytest.approx(10 * SMALL.carbon_nm)
    assert carbon[:, 2].min() >= top and carbon[:, 2].max() <= bottom
    per_A3 = CARBON_DENSITY_G_CM3 / 12.011 * 6.02214076e23 * 1e-24
    assert len(carbon) == pytest.approx(per_A3 * SMALL.field_A**2 * (bottom - top), rel=0.02)
    tags = atoms.get_tags()
    for i in range(len(atoms.info["particles"]["x_A"])):
        lowest = atoms.positions[tags == i + 1][:, 2].max()
        assert top - lowest == pytest.approx(1.5)


def test_the_same_seed_gives_the_same_specimen():
    a = build_specimen(SpecimenSpec(field_A=50, diameter_nm=(1.5, 2.0), carbon_nm=0.5, seed=4))
    b = build_specimen(SpecimenSpec(field_A=50, diameter_nm=(1.5, 2.0), carbon_nm=0.5, seed=4))
    c = build_specimen(SpecimenSpec(field_A=50, diameter_nm=(1.5, 2.0), carbon_nm=0.5, seed=5))
    assert np.array_equal(a.positions, b.positions)
    assert not np.array_equal(a.positions[:10], c.positions[:10])


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"sampling_A": 1.5}, "too coarse"),
        ({"diameter_nm": (3, 2)}, "MIN <= MAX"),
        ({"field_A": 50, "diameter_nm": (2, 10)}, "too small"),
        ({"coverage": 0.9}, "coverage"),
        ({"zone_axis_fraction": -0.1}, "zone-axis"),
        ({"field_A": 4000, "sampling_A": 0.2}, "8192"),
    ],
)
def test_bad_specs_are_one_line_errors(kwargs, words):
    with pytest.raises(DedkitError, match=words) as error:
        SpecimenSpec(**kwargs)
    assert "\n" not in str(error.value)


def test_ctf_defaults_transfer_both_gold_spacings():
    for d in (2.355, 2.039):
        v = ctf_value(d)
        assert v["in_aperture"] and v["sin_chi"] < -0.9 and v["damped"] < -0.7
    # at Scherzer the {200} is transferred with the opposite sign to the {111}
    scherzer = Microscope(defocus_A=math.sqrt(4 / 3 * 1.2e7 * Microscope().wavelength_A))
    assert ctf_value(2.355, scherzer)["sin_chi"] * ctf_value(2.039, scherzer)["sin_chi"] < 0
    assert not ctf_value(1.5)["in_aperture"]


def test_ctf_value_agrees_with_abtem():
    abtem = pytest.importorskip("abtem")
    m = Microscope()
    ctf = abtem.CTF(semiangle_cutoff=m.aperture_mrad, focal_spread=m.focal_spread_A,
                    angular_spread=m.semiangle_mrad, defocus=m.defocus_A, Cs=m.cs_mm * 1e7,
                    energy=m.energy_keV * 1e3)  # fmt: skip
    for d in (2.355, 2.039, 3.0):
        value = ctf._evaluate_from_angular_grid(np.array([m.wavelength_A / d]), np.zeros(1))[0]
        ours = ctf_value(d, m)
        # abTEM's CTF is exp(-i chi) times the envelopes
        assert -value.imag == pytest.approx(ours["damped"], abs=2e-3)


# ----- the image (abTEM) -----------------------------------------------------------------


IMAGED = dict(field_A=60, sampling_A=0.2, diameter_nm=(2.5, 3.0), coverage=0.35, carbon_nm=1.0,
              seed=2)  # fmt: skip


@pytest.fixture(scope="module")
def image():
    """The image of a small specimen whose particles are all on the zone axis (abTEM's
    import and first compilation take most of its time), the progress calls, and the
    image of the same particles in random orientations."""
    pytest.importorskip("abtem")
    from dedkit.sim.specimen import hrtem_intensity

    calls = []
    zone = hrtem_intensity(SpecimenSpec(zone_axis_fraction=1.0, **IMAGED),
                           progress=lambda done, total: calls.append((done, total)))  # fmt: skip
    random = hrtem_intensity(SpecimenSpec(zone_axis_fraction=0.0, **IMAGED))
    return zone, calls, random


@pytest.mark.slow  # abTEM's import and compilation: 10-25 s once a process
def test_intensity_is_mean_one_float32_of_the_field(image):
    result, calls, _ = image
    assert result.intensity.shape == (300, 300) and result.intensity.dtype == np.float32
    assert float(result.intensity.mean()) == pytest.approx(1.0, abs=1e-5)
    assert 0.02 < float(result.intensity.std()) < 1.0
    assert calls and calls[-1][0] == calls[-1][1]
    assert result.details["multislice_sampling_A"] == pytest.approx(0.1)
    assert result.n_zone_axis == len(result.particles["x_A"]) >= 1


@pytest.mark.slow  # abTEM's import and compilation: 10-25 s once a process
def test_zone_axis_particles_show_the_111_and_200_fringes(image):
    """Excess power at 1/2.355 and 1/2.039 1/A over the neighbouring radii, and more of it
    than the same particles give in random orientations ({200}: two spots a particle, not
    four, and weaker)."""
    zone, _, random = image
    assert np.array_equal(zone.particles["x_A"], random.particles["x_A"])
    ratio = {d: fringe_ratio(zone.intensity, 0.2, d) for d in (2.355, 2.039)}
    control = {d: fringe_ratio(random.intensity, 0.2, d) for d in (2.355, 2.039)}
    assert ratio[2.355] > 4 and ratio[2.355] > 3 * control[2.355], (ratio, control)
    assert ratio[2.039] > 1.8 and ratio[2.039] > 1.5 * control[2.039], (ratio, control)


@pytest.mark.slow  # abTEM's import and compilation: 10-25 s once a process
def test_the_particles_show(image):
    result, _, _ = image
    p = result.particles
    y, x = np.mgrid[:300, :300] * 0.2
    inside = np.hypot(x - p["x_A"][0], y - p["y_A"][0]) < 5 * p["diameter_nm"][0] - 2
    assert result.intensity[inside].std() > 1.5 * result.intensity[~inside].std()


@pytest.mark.slow  # abTEM's import and compilation: 10-25 s once a process
def test_no_fringes_from_carbon_alone():
    pytest.importorskip("abtem")
    from dedkit.sim.specimen import hrtem_intensity

    spec = SpecimenSpec(field_A=40, sampling_A=0.2, diameter_nm=(1.5, 2.0), coverage=0.0,
                        carbon_nm=1.0)  # fmt: skip
    carbon = hrtem_intensity(spec)
    assert len(carbon.particles["x_A"]) == 0 and carbon.details["n_gold"] == 0
    assert fringe_ratio(carbon.intensity, 0.2, 2.355) < 2


@pytest.mark.slow  # abTEM's import and compilation: 10-25 s once a process
def test_a_particle_at_x_y_is_at_row_y_column_x():
    """The contract's coordinates: (x, y) in A lies in pixel [int(y / s), int(x / s)]."""
    pytest.importorskip("abtem")
    from dedkit.sim.specimen import hrtem_intensity

    spec = SpecimenSpec(field_A=60, sampling_A=0.2, diameter_nm=(2.0, 2.5), coverage=0.05,
                        carbon_nm=0.5, seed=3)  # fmt: skip
    result = hrtem_intensity(spec)
    x, y = result.particles["x_A"][0], result.particles["y_A"][0]
    assert abs(x - y) > 15

    def contrast(cx, cy):
        rows, cols = np.mgrid[:300, :300] * 0.2
        disc = np.hypot(cols - cx, rows - cy) < 8
        return float(np.abs(result.intensity[disc] - 1).mean())

    assert contrast(x, y) > 2 * contrast(y, x)

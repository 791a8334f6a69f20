"""Charge transport: field, diffusion, drift time, Coulomb term, pair statistics, ranges."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import quad

from dedkit.errors import DedkitError
from dedkit.sim.charge import (
    ChargeModel,
    cloud_sigma_um,
    collision_stopping_power,
    coulomb_sigma_um,
    csda_range_um,
    diffusion_sigma_um,
    drift_time_ns,
    electric_field_V_per_cm,
    field_integral,
    generate_charge_keV,
    initial_sigma_um,
    line_density_keV_per_um,
)

MODEL = ChargeModel()


def test_field_matches_physics_md():
    # 1875 V/cm at the back to 3750 V/cm at the pixels (320 um, 90 V, 30 V)
    e = electric_field_V_per_cm([0.0, 160.0, 320.0], 320.0, MODEL)
    np.testing.assert_allclose(e, [1875.0, 2812.5, 3750.0])


@pytest.mark.parametrize(("z", "published"), [(0.0, 7.7), (50.0, 6.9), (160.0, 5.0), (300.0, 1.7)])
def test_diffusion_sigma_matches_physics_md(z, published):
    sigma = diffusion_sigma_um(z, 320.0, MODEL)
    assert sigma == pytest.approx(published, abs=0.05)


@pytest.mark.parametrize("z", [0.0, 37.0, 200.0, 299.0])
@pytest.mark.parametrize("depletion", [0.0, 30.0, 80.0])
def test_field_integral_closed_form_equals_quadrature(z, depletion):
    model = ChargeModel(bias_V=120.0, depletion_V=depletion)
    numeric, _ = quad(lambda zz: 1.0 / (electric_field_V_per_cm(zz, 300.0, model) * 1e-4), z, 300.0)
    assert field_integral(z, 300.0, model) == pytest.approx(numeric, rel=1e-9)


def test_diffusion_scales_with_temperature_and_vanishes_at_the_pixels():
    cold = ChargeModel(temperature_K=250.0)
    ratio = diffusion_sigma_um(0.0, 320.0, cold) / diffusion_sigma_um(0.0, 320.0, MODEL)
    assert ratio == pytest.approx(np.sqrt(250.0 / 293.0))
    assert diffusion_sigma_um(320.0, 320.0, MODEL) == 0.0
    # deeper charge drifts further and spreads more; values outside the sensor clip
    sigma = diffusion_sigma_um([-5.0, 0.0, 100.0, 200.0, 330.0], 320.0, MODEL)
    assert sigma[0] == sigma[1] and sigma[-1] == 0.0
    assert np.all(np.diff(sigma[1:]) < 0)


def test_higher_bias_shrinks_the_cloud():
    high = ChargeModel(bias_V=200.0)
    assert diffusion_sigma_um(0.0, 320.0, high) < diffusion_sigma_um(0.0, 320.0, MODEL)


def test_drift_time_from_the_back_about_26_ns():
    t = drift_time_ns([0.0, 160.0, 320.0], 320.0, MODEL)
    assert t[0] == pytest.approx(26.0, abs=0.5)
    assert t[2] == 0.0 and 0 < t[1] < t[0]


def test_coulomb_term_uses_the_same_field_integral():
    density = line_density_keV_per_um(200.0)
    assert density == pytest.approx(200.0 / 243.2, rel=2e-3)
    z = np.array([0.0, 100.0, 250.0])
    coulomb = coulomb_sigma_um(z, 320.0, density, MODEL)
    diffusion = diffusion_sigma_um(z, 320.0, MODEL)
    # lambda / (4 pi eps) against 2 kT/q: the same ratio at every depth
    ratio = (coulomb / diffusion) ** 2
    np.testing.assert_allclose(ratio, ratio[0])
    holes_per_m = density * 1e6 / 3.62e-3
    expected = holes_per_m * 1.602176634e-19 / (4 * np.pi * 11.7 * 8.8541878128e-12)
    assert ratio[0] == pytest.approx(expected / (2 * MODEL.thermal_voltage_V), rel=1e-9)
    # twice the charge per length, twice the variance
    double = coulomb_sigma_um(z, 320.0, 2 * density, MODEL)
    np.testing.assert_allclose(double**2, 2 * coulomb**2)


def test_cloud_sigma_adds_variances_and_switches():
    z = np.array([0.0, 160.0])
    e = np.array([2.0, 30.0])
    density = 0.8
    total = cloud_sigma_um(z, e, 320.0, MODEL, density)
    expected = np.sqrt(
        diffusion_sigma_um(z, 320.0, MODEL) ** 2
        + coulomb_sigma_um(z, 320.0, density, MODEL) ** 2
        + initial_sigma_um(e) ** 2
    )
    np.testing.assert_allclose(total, expected)
    plain = ChargeModel(coulomb=False, initial_cloud=False)
    np.testing.assert_allclose(
        cloud_sigma_um(z, e, 320.0, plain, density), diffusion_sigma_um(z, 320.0, plain)
    )


def test_initial_sigma_formula():
    assert initial_sigma_um(100.0) == pytest.approx(0.00443 * 100.0**1.75)
    assert initial_sigma_um(0.0) == 0.0


def test_pair_statistics_follow_the_fano_factor():
    rng = np.random.default_rng(3)
    e = np.full(200_000, 10.0)
    charge = generate_charge_keV(e, rng, MODEL).astype(np.float64)
    assert charge.mean() == pytest.approx(10.0, rel=1e-4)
    pairs = 10.0 / 3.62e-3
    expected_sd = np.sqrt(0.115 * pairs) * 3.62e-3
    assert charge.std() == pytest.approx(expected_sd, rel=0.01)
    exact = generate_charge_keV(e[:5], rng, ChargeModel(fano=0.0))
    np.testing.assert_array_equal(exact, np.float32(10.0))


@pytest.mark.parametrize(
    ("energy", "stopping", "range_um"),
    [(60, 4.558, 32.9), (80, 3.760, 53.8), (100, 3.264, 78.4), (120, 2.926, 106.3),
     (200, 2.235, 243.2), (300, 1.892, 454.0)],
)  # fmt: skip
def test_stopping_power_and_csda_range_match_icru37(energy, stopping, range_um):
    assert collision_stopping_power(energy) == pytest.approx(stopping, rel=2e-3)
    assert csda_range_um(energy) == pytest.approx(range_um, rel=3e-3)


def test_bad_models_and_energies_refused():
    with pytest.raises(DedkitError, match="exceed the depletion"):
        ChargeModel(bias_V=20.0, depletion_V=30.0)
    with pytest.raises(DedkitError, match="Fano"):
        ChargeModel(fano=-0.1)
    with pytest.raises(DedkitError, match="temperature"):
        ChargeModel(temperature_K=0.0)
    with pytest.raises(DedkitError, match="thickness"):
        diffusion_sigma_um(0.0, -1.0, MODEL)
    with pytest.raises(DedkitError, match="above 1 keV"):
        csda_range_um(0.5)

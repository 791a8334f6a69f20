"""Charge transport in a MÖNCH sensor: deposits to hole clouds at the pixel side.

The model (documented with its sources in ``docs/simulation.md``):

- **Pair creation.** A deposit of E keV makes E / W electron-hole pairs, W = 3.62 eV
  (physics.md; Scholze et al., J. Appl. Phys. 84 (1998) 2926 measured 3.66 eV at room
  temperature, some codes use 3.64), with the Fano variance F E / W, F = 0.115
  (physics.md: 0.115-0.13). The number of pairs is drawn from a normal distribution of
  that mean and variance, clipped at 0; charges are kept in keV (pairs x W) so that a
  frame reads in keV as a calibrated detector does.
- **Drift field.** Holes drift to the pixels at z = d (electrons enter at z = 0, the back).
  In a p+-in-n sensor biased at V above full depletion Vdep the field is linear,
  ``E(z) = (V - Vdep) / d + 2 Vdep z / d^2`` (physics.md: 1875 V/cm at the back to
  3750 V/cm at the pixels for 320 um, 90 V, 30 V).
- **Diffusion.** During the drift the cloud spreads laterally with variance
  ``sigma_D^2 = 2 D t = 2 (kT/q) * integral_z^d dz' / E(z')`` (Einstein relation
  D = mu kT / q with mu dt = dz / E), which does not depend on the mobility, so it holds
  with a field-dependent mobility too. For the linear field it has the closed form
  ``(2 kT/q / b) ln(E(d) / E(z))`` with ``b = 2 Vdep / d^2`` (and ``2 kT/q (d - z) / E``
  for a uniform field, Vdep = 0): 7.7 / 6.9 / 5.0 / 1.7 um from z = 0 / 50 / 160 / 300 um
  at 90 V, 30 V, 293 K, as physics.md quotes.
- **Initial cloud.** The charge of a deposit starts as a Gaussian of sigma
  ``0.00443 E[keV]^1.75`` um (physics.md), with E the deposit of the step: the spread of
  the delta electrons Geant4 does not follow below its production cut.
- **Coulomb repulsion (optional).** The holes of a track repel each other. The track is
  treated as a straight line charge of linear density lambda; a Gaussian line charge of
  any width expands with ``d sigma^2 / dt = mu lambda / (4 pi eps)`` (the cylindrical
  analogue of the self-repulsion of a spherical cloud, Gatti et al., NIM A 253 (1987)
  393: for a line, the rate does not depend on the width, so diffusion and repulsion add
  in variance). With ``mu dt = dz / E`` again,
  ``sigma_C^2 = lambda / (4 pi eps_Si) * integral_z^d dz' / E(z')``: the same field
  integral as diffusion, scaled by the charge per length instead of 2 kT/q. lambda is the
  mean linear charge density of a track of the beam energy E0: the pairs of E0 spread
  over its CSDA range, ``E0 / (W R_CSDA(E0))`` holes per unit length (0.82 keV/um at
  200 keV, which adds about 55 % to the diffusion variance). It is an approximation: the
  real density is lower near the entry (where the electron is fast) and higher at the
  end of the track, the track is not straight, and the electrons' cloud is ignored
  (it separates from the holes within the first nanoseconds).
- **Drift time** (reported, not needed for the cloud size): ``t = integral dz / v(E)``
  with the Jacoboni-Canali hole drift velocity ``v = mu0 E / (1 + (mu0 E / vsat)^beta)^(1/beta)``,
  mu0 = 1.31e8 T^-2.2 cm^2/Vs, vsat = 1.62e8 T^-0.52 cm/s, beta = 0.46 T^0.17
  (Jacoboni et al., Solid-State Electron. 20 (1977) 77): about 26 ns from the back.
- **CSDA range** (for the line density and the validation): the collision stopping power
  of ICRU Report 37 (Rohrlich-Carlson formula for electrons, I = 173 eV) with
  Sternheimer's density-effect correction for silicon (Sternheimer, Berger & Seltzer,
  At. Data Nucl. Data Tables 30 (1984) 261), integrated from 1 keV: within 0.3 % of
  physics.md's table from 60 to 300 keV.

Coordinates follow :mod:`dedkit.records.sensor`: x, y on the sensor in um, z = 0 at the
entry face, z = d at the pixels.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from dedkit.errors import DedkitError
from dedkit.records.sensor import SILICON_DENSITY_G_CM3

__all__ = [
    "BOLTZMANN_V_PER_K",
    "EPSILON_SI_F_PER_M",
    "ChargeModel",
    "ChargeClouds",
    "cloud_sigma_um",
    "collision_stopping_power",
    "coulomb_sigma_um",
    "csda_range_um",
    "diffusion_sigma_um",
    "drift_time_ns",
    "electric_field_V_per_cm",
    "field_integral",
    "generate_charge_keV",
    "initial_sigma_um",
    "line_density_keV_per_um",
    "transport_deposits",
]

#: Boltzmann constant over the elementary charge, V/K (CODATA 2018)
BOLTZMANN_V_PER_K = 8.617333262e-5
#: Permittivity of silicon, 11.7 eps0 (Sze, Physics of Semiconductor Devices)
EPSILON_SI_F_PER_M = 11.7 * 8.8541878128e-12
_ELEMENTARY_CHARGE_C = 1.602176634e-19

# silicon for the stopping power (physics.md; Sternheimer, Berger & Seltzer 1984)
_SI_Z_OVER_A = 14 / 28.0855
_SI_I_EV = 173.0
_SI_DENSITY_EFFECT = {"C": 4.4351, "X0": 0.2014, "X1": 2.8715, "a": 0.14921, "m": 3.2546,
                      "delta0": 0.14}  # fmt: skip
_ELECTRON_MASS_KEV = 510.99895
#: 2 pi r_e^2 m c^2 N_A, MeV cm^2 / mol
_STOPPING_CONSTANT = 0.1535375


@dataclass(frozen=True)
class ChargeModel:
    """Settings of the charge transport (defaults: MÖNCH 03 in the paper, physics.md).

    Attributes
    ----------
    bias_V : float
        Sensor bias (90 V).
    depletion_V : float
        Full-depletion voltage (30 V); must be below the bias.
    temperature_K : float
        Sensor temperature (293 K).
    pair_energy_eV : float
        Mean energy per electron-hole pair W (3.62 eV).
    fano : float
        Fano factor (0.115); 0 gives the mean number of pairs exactly.
    initial_cloud : bool
        Start each deposit's cloud with sigma 0.00443 E^1.75 um.
    coulomb : bool
        Add the Coulomb repulsion of the holes (line-charge model).
    """

    bias_V: float = 90.0
    depletion_V: float = 30.0
    temperature_K: float = 293.0
    pair_energy_eV: float = 3.62
    fano: float = 0.115
    initial_cloud: bool = True
    coulomb: bool = True

    def __post_init__(self):
        for name in ("bias_V", "temperature_K", "pair_energy_eV"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise DedkitError(f"{name} must be a positive number, got {value}")
        if not (math.isfinite(self.depletion_V) and self.depletion_V >= 0):
            raise DedkitError(f"depletion_V must be >= 0, got {self.depletion_V}")
        if self.depletion_V >= self.bias_V:
            raise DedkitError(
                f"the bias ({self.bias_V} V) must exceed the depletion voltage "
                f"({self.depletion_V} V): an under-depleted sensor is not modelled"
            )
        if not (math.isfinite(self.fano) and 0 <= self.fano <= 1):
            raise DedkitError(f"the Fano factor must be in [0, 1], got {self.fano}")

    @property
    def thermal_voltage_V(self) -> float:
        """kT/q at the sensor temperature."""
        return BOLTZMANN_V_PER_K * self.temperature_K

    def to_dict(self) -> dict:
        return asdict(self)


def _check_thickness(thickness_um: float) -> float:
    thickness_um = float(thickness_um)
    if not (math.isfinite(thickness_um) and thickness_um > 0):
        raise DedkitError(f"sensor thickness must be a positive number of um, got {thickness_um}")
    return thickness_um


def _field_coefficients(thickness_um: float, model: ChargeModel) -> tuple[float, float]:
    # E(z) = a + b z in V/um and V/um^2
    d = _check_thickness(thickness_um)
    a = (model.bias_V - model.depletion_V) / d
    b = 2.0 * model.depletion_V / d**2
    return a, b


def electric_field_V_per_cm(z_um, thickness_um: float, model: ChargeModel) -> np.ndarray:
    """Drift field E(z) = (V - Vdep) / d + 2 Vdep z / d^2, in V/cm.

    Parameters
    ----------
    z_um : array_like
        Depth from the entry face (0) to the pixels (thickness); clipped to the sensor.
    thickness_um : float
    model : ChargeModel

    Returns
    -------
    ndarray of float64
    """
    a, b = _field_coefficients(thickness_um, model)
    z = np.clip(np.asarray(z_um, dtype=np.float64), 0.0, thickness_um)
    return (a + b * z) * 1e4


def field_integral(z_um, thickness_um: float, model: ChargeModel) -> np.ndarray:
    """``integral_z^d dz' / E(z')`` in um^2 / V (closed form of the linear field).

    Parameters
    ----------
    z_um : array_like
        Depth where the charge is created (clipped to the sensor).
    thickness_um : float
    model : ChargeModel

    Returns
    -------
    ndarray of float64
    """
    a, b = _field_coefficients(thickness_um, model)
    d = thickness_um
    z = np.clip(np.asarray(z_um, dtype=np.float64), 0.0, d)
    if b * d < 1e-9 * a:
        return (d - z) / a
    # log1p keeps the precision for charge created next to the pixels
    return np.log1p(b * (d - z) / (a + b * z)) / b


def diffusion_sigma_um(z_um, thickness_um: float, model: ChargeModel) -> np.ndarray:
    """Lateral diffusion sigma (per axis) of holes created at depth z, in um.

    ``sqrt(2 (kT/q) integral_z^d dz / E)``: 7.7 um from the back of a 320 um sensor at
    90 V, 30 V depletion, 293 K.

    Parameters
    ----------
    z_um : array_like
    thickness_um : float
    model : ChargeModel

    Returns
    -------
    ndarray of float64
    """
    return np.sqrt(2.0 * model.thermal_voltage_V * field_integral(z_um, thickness_um, model))


def line_density_keV_per_um(beam_energy_keV: float) -> float:
    """Mean deposited energy per unit track length of an electron of this energy:
    ``E0 / R_CSDA(E0)`` (keV/um), the line density of the Coulomb model."""
    return float(beam_energy_keV) / float(csda_range_um(beam_energy_keV))


def _coulomb_coefficient(line_density_keV_per_um: float, model: ChargeModel) -> float:
    # lambda / (4 pi eps) in V (lambda in C/m); times the field integral in um^2/V -> um^2
    holes_per_m = line_density_keV_per_um * 1e6 / (model.pair_energy_eV * 1e-3)
    return holes_per_m * _ELEMENTARY_CHARGE_C / (4.0 * math.pi * EPSILON_SI_F_PER_M)


def coulomb_sigma_um(
    z_um, thickness_um: float, line_density_keV_per_um: float, model: ChargeModel
) -> np.ndarray:
    """Extra sigma (per axis, um) from the holes' repulsion (line-charge model).

    Parameters
    ----------
    z_um : array_like
    thickness_um : float
    line_density_keV_per_um : float
        Deposited energy per unit track length (see :func:`line_density_keV_per_um`).
    model : ChargeModel

    Returns
    -------
    ndarray of float64
    """
    coefficient = _coulomb_coefficient(line_density_keV_per_um, model)
    return np.sqrt(coefficient * field_integral(z_um, thickness_um, model))


def initial_sigma_um(edep_keV) -> np.ndarray:
    """Initial cloud sigma 0.00443 E^1.75 um of a deposit of E keV (physics.md)."""
    e = np.maximum(np.asarray(edep_keV, dtype=np.float64), 0.0)
    return 0.00443 * e**1.75


def cloud_sigma_um(
    z_um,
    edep_keV,
    thickness_um: float,
    model: ChargeModel,
    line_density_keV_per_um: float = 0.0,
) -> np.ndarray:
    """Sigma (per axis, um) of a deposit's charge cloud when it reaches the pixels.

    Initial size, diffusion and (with ``model.coulomb``) repulsion add in variance.

    Parameters
    ----------
    z_um, edep_keV : array_like
        Depth and energy of each deposit.
    thickness_um : float
    model : ChargeModel
    line_density_keV_per_um : float
        Track line density for the Coulomb term (ignored without ``model.coulomb``).

    Returns
    -------
    ndarray of float64
    """
    integral = field_integral(z_um, thickness_um, model)
    variance = 2.0 * model.thermal_voltage_V * integral
    if model.coulomb and line_density_keV_per_um > 0:
        variance = variance + _coulomb_coefficient(line_density_keV_per_um, model) * integral
    if model.initial_cloud:
        variance = variance + initial_sigma_um(edep_keV) ** 2
    return np.sqrt(variance)


def _jacoboni_holes(temperature_K: float) -> tuple[float, float, float]:
    t = temperature_K
    mu0 = 1.31e8 * t**-2.2  # cm^2/Vs
    vsat = 1.62e8 * t**-0.52  # cm/s
    beta = 0.46 * t**0.17
    return mu0, vsat, beta


def drift_time_ns(z_um, thickness_um: float, model: ChargeModel, n_steps: int = 2000):
    """Hole drift time from depth z to the pixels (Jacoboni-Canali velocity), in ns.

    Parameters
    ----------
    z_um : array_like
    thickness_um : float
    model : ChargeModel
    n_steps : int
        Integration grid over the thickness.

    Returns
    -------
    ndarray of float64
    """
    d = _check_thickness(thickness_um)
    mu0, vsat, beta = _jacoboni_holes(model.temperature_K)
    grid = np.linspace(0.0, d, n_steps + 1)
    field = electric_field_V_per_cm(grid, d, model)
    velocity = mu0 * field / (1.0 + (mu0 * field / vsat) ** beta) ** (1.0 / beta)  # cm/s
    inverse = 1e-4 / velocity  # s per um
    # time from each grid point to the pixels (trapezoids summed from the far end)
    pieces = 0.5 * (inverse[1:] + inverse[:-1]) * np.diff(grid)
    to_pixels = np.concatenate([np.cumsum(pieces[::-1])[::-1], [0.0]])
    z = np.clip(np.asarray(z_um, dtype=np.float64), 0.0, d)
    return np.interp(z, grid, to_pixels) * 1e9


def _density_effect(beta_gamma: np.ndarray) -> np.ndarray:
    p = _SI_DENSITY_EFFECT
    x = np.log10(beta_gamma)
    two_ln10 = 2.0 * math.log(10.0)
    delta = np.where(
        x >= p["X1"],
        two_ln10 * x - p["C"],
        two_ln10 * x - p["C"] + p["a"] * np.clip(p["X1"] - x, 0, None) ** p["m"],
    )
    return np.where(x < p["X0"], p["delta0"] * 10.0 ** (2.0 * (x - p["X0"])), delta)


def collision_stopping_power(energy_keV) -> np.ndarray:
    """Mass collision stopping power of silicon for electrons, MeV cm^2/g (ICRU 37).

    Parameters
    ----------
    energy_keV : array_like
        Kinetic energy (meaningful above a few keV).

    Returns
    -------
    ndarray of float64
    """
    t = np.asarray(energy_keV, dtype=np.float64)
    if np.any(~np.isfinite(t)) or np.any(t <= 0):
        raise DedkitError("electron energies must be positive numbers of keV")
    tau = t / _ELECTRON_MASS_KEV
    gamma = tau + 1.0
    beta2 = 1.0 - 1.0 / gamma**2
    i_rel = _SI_I_EV * 1e-3 / _ELECTRON_MASS_KEV
    f_minus = 1.0 - beta2 + (tau**2 / 8.0 - (2.0 * tau + 1.0) * math.log(2.0)) / gamma**2
    bracket = (
        np.log(tau**2 * (tau + 2.0) / (2.0 * i_rel**2))
        + f_minus
        - _density_effect(np.sqrt(gamma**2 - 1.0))
    )
    return _STOPPING_CONSTANT * _SI_Z_OVER_A / beta2 * bracket


def csda_range_um(energy_keV) -> np.ndarray:
    """CSDA range of electrons in silicon (um): ``integral dE / S(E)`` from 1 keV.

    No radiative loss (below 0.3 % here). Within 0.3 % of physics.md's ICRU 37 values
    (32.9 / 78.4 / 243.2 / 454 um at 60 / 100 / 200 / 300 keV).

    Parameters
    ----------
    energy_keV : array_like

    Returns
    -------
    ndarray of float64
    """
    energies = np.atleast_1d(np.asarray(energy_keV, dtype=np.float64))
    if np.any(~np.isfinite(energies)) or np.any(energies <= 1.0):
        raise DedkitError("CSDA ranges are computed for energies above 1 keV")
    # integrate in log E on a fine grid up to the largest energy, then interpolate
    grid = np.geomspace(1.0, energies.max(), 4001)
    integrand = grid / (collision_stopping_power(grid) * 1e3)  # dE/S with dE = E dlnE
    steps = 0.5 * (integrand[1:] + integrand[:-1]) * np.diff(np.log(grid))
    cumulative = np.concatenate([[0.0], np.cumsum(steps)])  # g/cm^2 from 1 keV
    # below 1 keV: E / S(1 keV) over-estimates the remaining range at most by a factor 2;
    # it is ~0.03 um, negligible beside the tens of um that matter here
    start = 1.0 / (collision_stopping_power(1.0) * 1e3)
    range_g_cm2 = np.interp(np.log(energies), np.log(grid), cumulative) + start
    out = range_g_cm2 / SILICON_DENSITY_G_CM3 * 1e4
    return out if np.ndim(energy_keV) else out[0]


def generate_charge_keV(edep_keV, rng: np.random.Generator, model: ChargeModel) -> np.ndarray:
    """Charge (keV equivalent: pairs x W) created by each deposit, with Fano fluctuations.

    The number of pairs N is normal with mean E / W and variance F E / W, clipped at 0.

    Parameters
    ----------
    edep_keV : (n,) array_like
    rng : numpy.random.Generator
    model : ChargeModel

    Returns
    -------
    (n,) ndarray of float32
    """
    e = np.asarray(edep_keV, dtype=np.float64)
    if model.fano == 0:
        return np.maximum(e, 0.0).astype(np.float32)
    w_keV = model.pair_energy_eV * 1e-3
    pairs = np.maximum(e, 0.0) / w_keV
    noisy = pairs + np.sqrt(model.fano * pairs) * rng.standard_normal(len(pairs))
    return (np.maximum(noisy, 0.0) * w_keV).astype(np.float32)


@dataclass
class ChargeClouds:
    """The charge of every deposit as it arrives at the pixels.

    Attributes
    ----------
    x_um, y_um : (n,) float32
        Centre of the cloud on the sensor (the deposit's x, y: the field is along z).
    sigma_um : (n,) float32
        Gaussian sigma per axis.
    charge_keV : (n,) float32
        Collected charge in keV (pairs x W).
    primary : (n,) int64
        Index of the primary electron each deposit belongs to.
    """

    x_um: np.ndarray
    y_um: np.ndarray
    sigma_um: np.ndarray
    charge_keV: np.ndarray
    primary: np.ndarray

    def __len__(self) -> int:
        return len(self.x_um)


def transport_deposits(
    deposits,
    rng: np.random.Generator,
    model: ChargeModel | None = None,
) -> ChargeClouds:
    """Turn Geant4 deposits into hole clouds at the pixel side (vectorised over steps).

    Parameters
    ----------
    deposits : dedkit.records.deposits.ElectronDeposits
        Energy-deposit steps grouped by primary (CSR ``offsets``), with the sensor.
    rng : numpy.random.Generator
        Source of the Fano fluctuations.
    model : ChargeModel, optional
        Default :class:`ChargeModel()`.

    Returns
    -------
    ChargeClouds
    """
    model = ChargeModel() if model is None else model
    thickness = float(deposits.sensor.thickness_um)
    edep = np.asarray(deposits.step_edep_keV, dtype=np.float64)
    offsets = np.asarray(deposits.offsets, dtype=np.int64)
    primary = np.repeat(np.arange(len(offsets) - 1, dtype=np.int64), np.diff(offsets))
    density = line_density_keV_per_um(deposits.energy_keV) if model.coulomb else 0.0
    sigma = cloud_sigma_um(deposits.step_z_um, edep, thickness, model, density)
    return ChargeClouds(
        x_um=np.asarray(deposits.step_x_um, dtype=np.float32),
        y_um=np.asarray(deposits.step_y_um, dtype=np.float32),
        sigma_um=sigma.astype(np.float32),
        charge_keV=generate_charge_keV(edep, rng, model),
        primary=primary,
    )

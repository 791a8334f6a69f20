"""Dose weights against the plain formula of Grant & Grigorieff (2015)."""

import math

import numpy as np
import pytest
import scipy.fft

from dedkit.errors import DedkitError
from dedkit.frames import DoseWeights, critical_exposure, exposure_weights, voltage_factor


def exact_weights(shape, pixel_size, doses, pre_dose=0.0, factor=1.0):
    """The formula written out plainly, element by element of the rfft2 half-plane."""
    ny, nx = shape
    ky = scipy.fft.fftfreq(ny)[:, None]
    kx = scipy.fft.rfftfreq(nx)[None, :]
    k = np.sqrt(ky**2 + kx**2) / pixel_size
    with np.errstate(divide="ignore"):
        ne = (0.245 * k**-1.665 + 2.81) * factor
    before = pre_dose + np.concatenate([[0.0], np.cumsum(doses)[:-1]])
    mid = before + np.asarray(doses) / 2.0
    q = np.array([np.exp(-n / (2 * ne)) for n in mid])
    return len(doses) * q / q.sum(axis=0)


def test_critical_exposure_is_the_published_curve():
    k = np.array([0.05, 0.1, 0.25, 0.5])
    assert np.allclose(critical_exposure(k), 0.245 * k**-1.665 + 2.81)
    assert np.allclose(critical_exposure(k, 200), 0.8 * (0.245 * k**-1.665 + 2.81))
    assert critical_exposure(0.0) == np.inf
    # 3 Å at 300 kV: about 4 e/Å² (Grant & Grigorieff, fig. 2)
    assert 3.5 < critical_exposure(1 / 3) < 4.5


def test_voltage_factor_follows_beta_squared_between_published_points():
    assert voltage_factor(300) == 1.0 and voltage_factor(200) == 0.8
    # monotonic, and near the plain ratio of beta^2 (within the 1 % anchoring exponent)
    volts = [60, 80, 100, 120, 160, 200, 250, 300, 400]
    factors = [voltage_factor(v) for v in volts]
    assert np.all(np.diff(factors) > 0)

    def beta2(v):
        return 1 - 1 / (1 + v / 510.99895) ** 2

    for v, f in zip(volts, factors, strict=True):
        assert f == pytest.approx(beta2(v) / beta2(300), rel=0.02)
    assert voltage_factor(120) == pytest.approx(0.568, abs=1e-3)


@pytest.mark.parametrize("volts", [50, 500, float("nan"), "x"])
def test_voltage_outside_the_model_is_refused(volts):
    with pytest.raises(DedkitError, match="voltage"):
        voltage_factor(volts)


@pytest.mark.parametrize(
    "shape, pixel, doses, pre, volts",
    [
        ((64, 48), 1.0, [1.5] * 10, 0.0, 300),
        ((51, 37), 0.83, [0.8] * 7, 3.0, 200),  # odd sizes
        ((40, 64), 1.2827, [0.5, 2.0, 0.3, 1.1, 4.0], 0.0, 120),  # variable doses
        ((32, 32), 0.5, [3.0] * 40, 20.0, 300),  # heavy exposure: weights underflow
    ],
)
def test_lookup_matches_the_exact_formula(shape, pixel, doses, pre, volts):
    dw = DoseWeights(shape, pixel, doses, pre_dose=pre, voltage_kv=volts)
    exact = exact_weights(shape, pixel, doses, pre, voltage_factor(volts))
    assert dw.n_frames == len(doses)
    looked_up = np.array([dw.frame(i) for i in range(dw.n_frames)])
    assert looked_up.shape == (len(doses), shape[0], shape[1] // 2 + 1)
    assert looked_up.dtype == np.float32
    finite = np.isfinite(exact)
    # the heavy case underflows in the plain formula (0/0); the module stays finite
    assert np.all(np.isfinite(looked_up))
    assert np.abs(looked_up - exact)[finite].max() < 1e-3
    assert dw.max_error < 1e-3


def test_weights_keep_the_signal_scale_and_favour_early_frames():
    dw = DoseWeights((96, 80), 1.0, [1.0] * 30)
    total = np.sum([dw.frame(i) for i in range(30)], axis=0)
    assert np.abs(total - 30).max() < 1e-3
    assert np.all([dw.frame(i)[0, 0] == 1.0 for i in range(30)])
    corner = [dw.frame(i)[48, 40] for i in range(30)]
    assert np.all(np.diff(corner) < 0)


def test_pre_dose_and_mid_versus_end_cancel_for_equal_doses():
    k = np.linspace(0.01, 0.5, 50)
    plain = exposure_weights(k, [1.0] * 12)
    assert np.allclose(exposure_weights(k, [1.0] * 12, pre_dose=25.0), plain)
    # end-of-frame exposures (RELION) give the same normalised weights
    n_end = np.arange(1, 13, dtype=float)[:, None]
    q = np.exp(-n_end / (2 * critical_exposure(k)))
    assert np.allclose(12 * q / q.sum(axis=0), plain)


def test_frame_fills_out_and_negative_index():
    dw = DoseWeights((16, 20), 1.0, [1.0, 2.0, 3.0])
    out = np.empty(dw.half_shape, np.float32)
    result = dw.frame(-1, out=out)
    assert result is out
    assert np.array_equal(out, dw.frame(2))
    with pytest.raises(IndexError):
        dw.frame(3)
    k, w = dw.table(0)
    assert k[0] == 0 and w[0] == 1.0 and len(k) == dw.n_bins


def test_memory_is_an_index_image_and_a_small_table():
    dw = DoseWeights((200, 300), 1.0, [1.0] * 40)
    assert dw._index.dtype == np.uint16
    assert dw.nbytes == 200 * 151 * 2 + dw._table.nbytes
    assert dw._table.nbytes < 40 * 70000 * 4


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"doses": []}, "one dose per frame"),
        ({"doses": [1.0, -1.0]}, "not negative"),
        ({"doses": [0.0, 0.0]}, "add up to 0"),
        ({"doses": [1.0, math.inf]}, "finite"),
        ({"pixel_size": 0}, "pixel size"),
        ({"shape": (0, 10)}, "shape"),
        ({"pre_dose": -1}, "pre-dose"),
        ({"voltage_kv": 30}, "voltage"),
    ],
)
def test_bad_input_is_refused(kwargs, match):
    args = {"shape": (8, 8), "pixel_size": 1.0, "doses": [1.0, 1.0]} | kwargs
    shape, pixel, doses = args.pop("shape"), args.pop("pixel_size"), args.pop("doses")
    with pytest.raises(DedkitError, match=match):
        DoseWeights(shape, pixel, doses, **args)

"""Detector response: pixel integration, noise, pedestal and gain maps, ADC."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import erf

from dedkit.errors import DedkitError
from dedkit.sim.response import (
    ADC_MAX,
    CalibrationMaps,
    DetectorResponse,
    adc_range_keV,
    add_noise,
    calibrate_frames,
    dark_frames,
    digitize,
    integrate_clouds,
    make_calibration_maps,
)


def _pixel_fractions(x, y, sigma, rows, cols):
    # Gaussian integrated over each pixel by direct summation of the erf product
    fx = 0.5 * np.diff(erf((np.arange(cols + 1) - x) / (np.sqrt(2) * sigma)))
    fy = 0.5 * np.diff(erf((np.arange(rows + 1) - y) / (np.sqrt(2) * sigma)))
    return np.outer(fy, fx)


def test_one_cloud_integrates_exactly():
    out = integrate_clouds([0], [4.3], [5.8], [0.7], [10.0], (1, 11, 9))
    expected = 10.0 * _pixel_fractions(4.3, 5.8, 0.7, 11, 9)
    np.testing.assert_allclose(out[0], expected, atol=1e-5)
    assert out.sum() == pytest.approx(10.0, abs=1e-4)


def test_point_charge_lands_in_its_pixel_and_clouds_add_up():
    out = integrate_clouds(
        [0, 0, 1, 1], [2.5, 2.99, 0.0, 3.5], [1.5, 1.2, 0.0, 1.5], [0.0, 0.0, 0.2, 0.3],
        [1.0, 2.0, 3.0, 4.0], (2, 4, 4),
    )  # fmt: skip
    assert out[0, 1, 2] == 3.0 and np.count_nonzero(out[0]) == 1
    # a cloud on the frame's corner keeps the quarter inside the frame
    quarter = 3.0 * (0.5 * erf(1 / (0.2 * np.sqrt(2)))) ** 2
    assert out[1, 0, 0] == pytest.approx(quarter, rel=1e-5)
    # a cloud at x = 3.5 of a 4-pixel frame loses its part beyond x = 4
    inside = 0.5 * (1 + erf(0.5 / (0.3 * np.sqrt(2))))
    assert out[1].sum() == pytest.approx(0.75 + 4.0 * inside, rel=1e-5)


def test_charge_outside_the_frame_and_foreign_frames_are_lost():
    out = integrate_clouds([0, 5, -1], [-3.0, 1.0, 1.0], [1.0, 1.0, 1.0], [0.4] * 3,
                           [5.0] * 3, (1, 3, 3))  # fmt: skip
    assert out.sum() == 0.0
    # half a cloud centred on the left edge
    half = integrate_clouds([0], [0.0], [3.5], [0.5], [8.0], (1, 7, 3))
    assert half.sum() == pytest.approx(4.0, abs=1e-4)


def test_integration_matches_brute_force_for_many_clouds():
    rng = np.random.default_rng(5)
    n = 300
    frame = rng.integers(0, 3, n)
    x, y = rng.uniform(-1, 13, n), rng.uniform(-1, 11, n)
    sigma, charge = rng.uniform(0.05, 1.2, n), rng.uniform(0.1, 5, n)
    out = integrate_clouds(frame, x, y, sigma, charge, (3, 10, 12))
    expected = np.zeros((3, 10, 12))
    for i in range(n):
        expected[frame[i]] += charge[i] * _pixel_fractions(x[i], y[i], sigma[i], 10, 12)
    np.testing.assert_allclose(out, expected, atol=2e-4)


def test_integrate_adds_to_given_frames_and_checks_arguments():
    base = np.ones((1, 4, 4), np.float32)
    out = integrate_clouds([0], [2.0], [2.0], [0.0], [1.5], (1, 4, 4), out=base)
    assert out is base and out[0, 2, 2] == 2.5
    with pytest.raises(DedkitError, match="equal length"):
        integrate_clouds([0, 0], [1.0], [1.0], [1.0], [1.0], (1, 4, 4))
    with pytest.raises(DedkitError, match="float32"):
        integrate_clouds([0], [1.0], [1.0], [1.0], [1.0], (1, 4, 4), out=np.zeros((1, 4, 4)))


def test_default_range_is_about_100_keV():
    response = DetectorResponse()
    assert adc_range_keV(response) == pytest.approx(102.6, abs=0.1)
    assert response.adc_max == ADC_MAX == 16383
    # the noise in ADU
    assert response.noise_keV * response.gain_adu_per_keV == pytest.approx(26.1)


def test_calibration_maps_have_the_requested_spreads():
    response = DetectorResponse()
    maps = make_calibration_maps((200, 300), response, np.random.default_rng(1))
    assert maps.pedestal_adu.shape == (200, 300) and maps.gain_adu_per_keV.dtype == np.float32
    assert maps.pedestal_adu.mean() == pytest.approx(1500, abs=2)
    assert maps.pedestal_adu.std() == pytest.approx(150, rel=0.02)
    assert maps.gain_adu_per_keV.mean() == pytest.approx(145, rel=1e-3)
    assert maps.gain_adu_per_keV.std() / 145 == pytest.approx(0.03, rel=0.03)
    np.testing.assert_allclose(maps.gain_keV_per_adu, 1 / maps.gain_adu_per_keV, rtol=1e-6)


def test_digitize_without_noise_is_exact_and_saturates():
    maps = CalibrationMaps(
        pedestal_adu=np.array([[1000.0, 2000.0]], np.float32),
        gain_adu_per_keV=np.array([[100.0, 150.0]], np.float32),
    )
    response = DetectorResponse(noise_keV=0.0)
    adc = digitize(np.array([[[10.0, 10.0]], [[200.0, -20.0]]]), maps, response)
    assert adc.dtype == np.uint16
    np.testing.assert_array_equal(adc, [[[2000, 3500]], [[ADC_MAX, 0]]])
    back = calibrate_frames(adc[:1], maps)
    np.testing.assert_allclose(back, [[[10.0, 10.0]]])


def test_dark_frames_give_pedestal_and_noise():
    response = DetectorResponse()
    rng = np.random.default_rng(2)
    maps = make_calibration_maps((20, 30), response, rng)
    dark = dark_frames(400, maps, response, rng)
    mean = dark.mean(axis=0)
    np.testing.assert_allclose(mean, maps.pedestal_adu, atol=5 * 26 / np.sqrt(400) + 0.5)
    noise_kev = (dark.std(axis=0) / maps.gain_adu_per_keV).mean()
    assert noise_kev == pytest.approx(0.18, rel=0.02)
    with pytest.raises(DedkitError, match="at least 1"):
        dark_frames(0, maps, response, rng)


def test_add_noise_in_place_with_a_map():
    frames = np.zeros((2000, 2, 2), np.float32)
    noise = np.array([[0.1, 0.2], [0.3, 0.0]])
    out = add_noise(frames, noise, np.random.default_rng(0))
    assert out is frames
    np.testing.assert_allclose(frames.std(axis=0), noise, atol=0.01)
    with pytest.raises(DedkitError):
        add_noise(frames, -1.0, np.random.default_rng(0))


@pytest.mark.parametrize(
    "kwargs",
    [{"noise_keV": -0.1}, {"gain_adu_per_keV": 0.0}, {"pedestal_adu": 20000.0},
     {"adc_bits": 4}, {"gain_spread": 0.5}],
)  # fmt: skip
def test_bad_response_refused(kwargs):
    with pytest.raises(DedkitError):
        DetectorResponse(**kwargs)

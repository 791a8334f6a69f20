import numpy as np
import pytest

from dedkit.errors import DedkitError
from dedkit.frames.reduce import reduce_image
from dedkit.metrics import radial_power_spectrum
from dedkit.sim.superres import SuperResModel, expected_counts
from dedkit.studies.reduction_frc import (
    SEED_GAIN,
    filter_power,
    low_snr_gain,
    model_signal_power,
    plot,
    run,
    specimen,
)


def test_specimen_has_its_contrast_and_power_law(rng):
    img = specimen((256, 256), rng, slope=2.0, contrast=0.2)
    assert img.mean() == pytest.approx(1.0, abs=0.01)
    assert img.std() == pytest.approx(0.2, rel=0.02)
    s = radial_power_spectrum(img, subtract_mean=True)
    ring = np.arange(8, 120)
    slope = np.polyfit(np.log(s.frequency[ring]), np.log(s.power[ring]), 1)[0]
    assert slope == pytest.approx(-2.0, abs=0.15)
    white = specimen((256, 256), rng, slope=0.0, contrast=0.2)
    w = radial_power_spectrum(white, subtract_mean=True).power[1:]
    assert w[:60].mean() / w[60:].mean() == pytest.approx(1.0, abs=0.06)


def test_filter_power_of_binning_and_lanczos():
    box = filter_power("bin", 2)
    g = np.array([0.0, 0.125, 0.25, 0.5])
    assert np.allclose(box(g), np.cos(np.pi * g) ** 2)
    lanczos = filter_power("lanczos3", 2)
    assert lanczos(0.0) == pytest.approx(1.0)
    assert lanczos(0.05) > 0.99 and lanczos(0.4) < 0.01
    # IMOD's box filter reduces exactly as binning does
    assert np.allclose(filter_power("box", 4)(g), filter_power("bin", 4)(g))


def test_low_snr_gain_limits():
    flat = lambda gx, gy: np.ones_like(gx)  # noqa: E731
    for factor in (2, 4):
        # a white signal is aliased as the white noise is: no filter helps
        assert low_snr_gain(factor, flat) == pytest.approx(0.0, abs=1e-9)
        assert low_snr_gain(factor, model_signal_power(0.0, 0.0)) == pytest.approx(0.0, abs=1e-9)
        # the box filter is binning
        assert low_snr_gain(factor, model_signal_power(), "box") == pytest.approx(0.0, abs=1e-9)

    def bandlimited(factor):
        return lambda gx, gy: (np.hypot(gx, gy) <= 1 / (2 * factor)).astype(float)

    # nothing beyond the reduced Nyquist: the largest gains, the seed's figures
    by2, by4 = low_snr_gain(2, bandlimited(2)), low_snr_gain(4, bandlimited(4))
    assert by2 == pytest.approx(SEED_GAIN[2], abs=5) and by4 == pytest.approx(SEED_GAIN[4], abs=2)
    assert 0 < low_snr_gain(2, model_signal_power()) < by2


def test_simulated_images_reach_the_low_snr_gain():
    # signal and noise spectra of the simulated images, reduced both ways, give the gain
    # the alias sums predict (no FRC noise: the two spectra are measured separately)
    rng = np.random.default_rng(7)
    model = SuperResModel()
    spectra = {}
    for _ in range(4):
        lam = expected_counts(specimen((512, 512), rng), 5.0, 1.0, model)
        noise = rng.poisson(lam) - lam
        for method in ("lanczos3", "bin"):
            s = radial_power_spectrum(reduce_image(lam, 2, method), subtract_mean=True)
            n = radial_power_spectrum(reduce_image(noise, 2, method))
            spectra.setdefault(method, []).append((s.power, n.power))
    band = s.frequency >= 0.5
    snr = {m: np.mean(v, axis=0) for m, v in spectra.items()}
    mean = {m: (p[0] / p[1])[band].mean() for m, p in snr.items()}
    measured = 100 * (mean["lanczos3"] / mean["bin"] - 1)
    assert measured == pytest.approx(low_snr_gain(2, model_signal_power()), abs=2.0)


def test_run_report():
    result = run(seed=2, size=128, doses=(20.0,), repeats=2)
    report = result.report
    assert set(report["factors"]) == {"2", "4"}
    for factor in ("2", "4"):
        entry = report["factors"][factor]
        assert isinstance(entry["gain_percent"], float)
        assert entry["gain_percent_err"] >= 0
        assert entry["seed_percent"] == SEED_GAIN[int(factor)]
        assert len(entry["per_dose"]) == 1
    assert [r["dose"] for r in result.rows] == [20.0, "all", 20.0, "all"]
    # each row's gain is the ratio of its FRCs (one dose: the 'all' row repeats it)
    row = result.rows[0]
    assert row["frc_antialiased"] > row["frc_binned"] > 0
    assert result.curves["frequency_2"].shape == result.curves["frc_2_20_lanczos3"].shape
    assert run(seed=2, size=128, doses=(20.0,), repeats=2).report == report


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"repeats": 1}, "repeats"),
        ({"size": 100}, "multiple"),
        ({"factors": (1,)}, "factors"),
        ({"doses": (-1.0,)}, "doses"),
        ({"filter": "bin"}, "filter"),
        ({"dose_rate": 0.0}, "dose rate"),
        ({"contrast": -0.1}, "contrast"),
        ({"localisation_sigma": -0.1}, "localisation"),
        ({"camera": "CCD"}, "count"),
    ],
)
def test_run_rejects_bad_settings(kwargs, message):
    with pytest.raises(DedkitError, match=message):
        run(**{"size": 128, "repeats": 2, "doses": (10.0,), **kwargs})


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    result = run(size=128, doses=(10.0, 20.0), repeats=2)
    path = plot(result, tmp_path / "frc.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_default_study():
    result = run()
    for factor in ("2", "4"):
        entry = result.report["factors"][factor]
        # measured to better than a point, positive, and below this specimen's low-SNR
        # gain (the FRC saturates as the dose rises)
        assert entry["gain_percent_err"] < 1.0
        assert 10 < entry["gain_percent"] < entry["theory_percent"]
        gains = [d["gain_percent"] for d in entry["per_dose"]]
        assert gains[-1] < gains[0]

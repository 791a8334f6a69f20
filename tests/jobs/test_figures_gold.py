"""Figures of the gold-nanoparticle run: written, non-blank, readable PNGs."""

import numpy as np
import pytest

from dedkit.errors import DedkitError

pytest.importorskip("matplotlib")

from matplotlib.image import imread  # noqa: E402

from dedkit.jobs.figures_gold import dose_figure, gold_figure, radial_figure  # noqa: E402
from dedkit.metrics import (  # noqa: E402
    AU_111_A,
    AU_200_A,
    power_spectrum,
    radial_profile,
    ring_snr,
)


def _images():
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:192, 0:192] * 0.5
    fringes = 1 + 0.1 * np.cos(2 * np.pi * (0.6 * x + 0.8 * y) / AU_111_A)
    return {"truth": rng.poisson(4.0 * fringes), "centroid": rng.poisson(4.0, (192, 192))}


def _check_png(path):
    assert path.exists() and path.stat().st_size > 1000
    pixels = imread(path)
    assert pixels.ndim == 3 and pixels[..., :3].std() > 0.01
    return pixels


def test_gold_figure(tmp_path):
    images = _images()
    rings = {k: [ring_snr(v, 0.5, AU_111_A), ring_snr(v, 0.5, AU_200_A)] for k, v in images.items()}
    spectra = {"truth": power_spectrum(images["truth"])}  # the other is computed
    path = gold_figure(images, spectra, rings, 0.5, tmp_path / "gold.png", title="Au")
    assert path == tmp_path / "gold.png"
    pixels = _check_png(path)
    assert pixels.shape[1] > pixels.shape[0] * 0.8  # two columns side by side
    # without measures: the gold rings are circled anyway; PDF by suffix
    pdf = gold_figure(images, None, None, 0.5, tmp_path / "gold.pdf")
    assert pdf.read_bytes()[:4] == b"%PDF"
    assert not list(tmp_path.glob(".*"))  # no temporaries left behind


def test_gold_figure_bad_input(tmp_path):
    images = _images()
    with pytest.raises(DedkitError, match="spectrum"):
        gold_figure(images, {"truth": np.ones((4, 4))}, None, 0.5, tmp_path / "x.png")
    with pytest.raises(DedkitError, match="pixel size"):
        gold_figure(images, None, None, -1, tmp_path / "x.png")
    with pytest.raises(DedkitError):
        gold_figure({}, None, None, 0.5, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_dose_figure(tmp_path):
    doses = np.array([2.0, 4, 8, 16])
    curves = {"centroid": (doses, [0.3, -0.4, 0.6, 0.2]), "cnn": (doses, 0.4 * doses)}
    _check_png(dose_figure(curves, 5.0, tmp_path / "dose.png"))
    _check_png(dose_figure(curves, 5.0, tmp_path / "dose2.png", dose_for={"cnn": 12.5}))
    with pytest.raises(DedkitError, match="doses"):
        dose_figure({"a": ([1, 2], [1.0])}, 5.0, tmp_path / "bad.png")


def test_radial_figure(tmp_path):
    images = _images()
    profiles = {k: radial_profile(v, 0.5) for k, v in images.items()}
    rings = [ring_snr(images["truth"], 0.5, AU_111_A), AU_200_A]
    _check_png(radial_figure(profiles, rings, tmp_path / "radial.png", fmax=0.8))

"""Issue 17: the disk cache (dedkit.jobs.cache) and the specimen job (dedkit.jobs.specimen):
cached images, MRC + JSON outputs written together, reading them (or any image with a
pixel size) back."""

from __future__ import annotations

import json
import os
import warnings

import mrcfile
import numpy as np
import pytest

from dedkit.errors import DedkitError
from dedkit.jobs.cache import cache_dir, cache_path, cached_npz


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("DEDKIT_CACHE", str(folder))
    return folder


# ----- the cache --------------------------------------------------------------------------


def test_cache_dir_order(monkeypatch, tmp_path):
    monkeypatch.setenv("DEDKIT_CACHE", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_dir() == tmp_path / "a"
    monkeypatch.delenv("DEDKIT_CACHE")
    assert cache_dir() == tmp_path / "x" / "dedkit"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "dedkit"


def test_cached_npz_computes_once_per_key(cache):
    calls = []

    def make():
        calls.append(1)
        return {"x": np.arange(4.0), "meta": np.asarray(json.dumps({"a": 1})), "n": 3}

    hits = []
    first = cached_npz("thing", {"k": 1}, make)
    again = cached_npz("thing", {"k": 1}, make, progress=lambda d, t: hits.append((d, t)))
    other = cached_npz("thing", {"k": 2}, make)
    assert len(calls) == 2 and hits == [(1, 1)]
    assert np.array_equal(first["x"], again["x"]) and int(again["n"]) == 3
    assert json.loads(str(again["meta"])) == {"a": 1}
    assert np.array_equal(other["x"], first["x"])
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        [cache_path("thing", {"k": 1}).name, cache_path("thing", {"k": 2}).name]
    )  # no temporaries left


def test_a_corrupt_cache_file_is_recomputed_with_a_warning(cache):
    make = lambda: {"x": np.ones(3)}  # noqa: E731
    cached_npz("thing", {"k": 1}, make)
    path = cache_path("thing", {"k": 1})
    path.write_bytes(path.read_bytes()[:40])
    with pytest.warns(UserWarning, match="unreadable cache file"):
        result = cached_npz("thing", {"k": 1}, make)
    assert np.array_equal(result["x"], np.ones(3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.array_equal(cached_npz("thing", {"k": 1}, make)["x"], np.ones(3))


def test_a_file_of_another_key_is_not_used(cache):
    cached_npz("thing", {"k": 1}, lambda: {"x": np.ones(3)})
    os.replace(cache_path("thing", {"k": 1}), cache_path("thing", {"k": 2}))
    with pytest.warns(UserWarning, match="another key"):
        result = cached_npz("thing", {"k": 2}, lambda: {"x": np.zeros(3)})
    assert not result["x"].any()


def test_an_unwritable_cache_warns_and_returns(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("DEDKIT_CACHE", str(blocker / "cache"))
    with pytest.warns(UserWarning, match="cannot write the cache file"):
        result = cached_npz("thing", {"k": 1}, lambda: {"x": np.ones(2)})
    assert result["x"].tolist() == [1.0, 1.0]


def test_bad_names_and_keys_are_refused(cache):
    with pytest.raises(DedkitError, match="cache name"):
        cached_npz("../x", {}, dict)
    with pytest.raises(DedkitError, match="JSON-able"):
        cached_npz("x", {"a": object()}, dict)


# ----- the specimen job -------------------------------------------------------------------

SPEC_KW = dict(field_A=40, sampling_A=0.4, diameter_nm=(1.5, 2.0), carbon_nm=1.0)


@pytest.fixture
def specimen():
    pytest.importorskip("ase")
    pytest.importorskip("abtem")
    from dedkit.sim.specimen import SpecimenSpec

    return SpecimenSpec(**SPEC_KW)


@pytest.mark.slow  # abTEM multislice (and its first compilation)
def test_specimen_image_is_cached_and_identical(cache, specimen):
    from dedkit.jobs.specimen import specimen_image

    first = specimen_image(specimen)
    again = specimen_image(specimen)
    assert not first.details["cache_hit"] and again.details["cache_hit"]
    assert np.array_equal(first.intensity, again.intensity)
    assert again.intensity.dtype == np.float32
    for key, value in first.particles.items():
        assert np.array_equal(value, again.particles[key]), key
    assert again.particles["zone_axis"].dtype == bool
    assert again.details["n_gold"] == first.details["n_gold"] > 0
    # another microscope is another image
    from dedkit.sim.specimen import Microscope

    defocused = specimen_image(specimen, Microscope(defocus_A=600))
    assert not defocused.details["cache_hit"]
    assert not np.array_equal(defocused.intensity, first.intensity)


@pytest.mark.slow  # abTEM multislice (and its first compilation)
def test_write_and_read_specimen_round_trip(cache, specimen, tmp_path):
    from dedkit.jobs.specimen import read_specimen, specimen_image, write_specimen

    image = specimen_image(specimen)
    path = tmp_path / "gold.mrc"
    write_specimen(path, image)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "gold.mrc", "gold.mrc.json"]
    with mrcfile.open(path) as mrc:
        assert float(mrc.voxel_size.x) == pytest.approx(0.4)
        assert mrc.data.dtype == np.float32 and mrc.data.shape[-2:] == (100, 100)
    back = read_specimen(path)
    assert np.allclose(back.intensity, image.intensity, atol=1e-6)
    assert back.spec == image.spec and back.microscope == image.microscope
    assert np.allclose(back.particles["rotation"], image.particles["rotation"])
    assert back.particles["zone_axis"].dtype == bool
    # an existing output needs force; with it, both are replaced
    with pytest.raises(DedkitError, match="exists"):
        write_specimen(path, image)
    write_specimen(path, image, force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "gold.mrc", "gold.mrc.json"]


def test_read_specimen_takes_a_plain_image_with_a_pixel_size(tmp_path):
    from dedkit.jobs.specimen import read_specimen

    data = np.random.default_rng(1).uniform(1, 3, (1, 20, 30)).astype(np.float32)
    with mrcfile.new(tmp_path / "mine.mrc") as mrc:
        mrc.set_data(data)
        mrc.voxel_size = 0.5
    image = read_specimen(tmp_path / "mine.mrc")
    assert image.sampling_A == 0.5 and image.spec is None and image.intensity.shape == (20, 30)
    assert float(image.intensity.mean()) == pytest.approx(1.0, abs=1e-5)
    with mrcfile.new(tmp_path / "nosize.mrc") as mrc:
        mrc.set_data(data)
    with pytest.raises(DedkitError, match="no pixel size") as error:
        read_specimen(tmp_path / "nosize.mrc")
    assert "nosize.mrc" in str(error.value)
    with mrcfile.new(tmp_path / "zero.mrc") as mrc:
        mrc.set_data(np.zeros((1, 4, 4), np.float32))
        mrc.voxel_size = 1.0
    with pytest.raises(DedkitError, match="positive mean"):
        read_specimen(tmp_path / "zero.mrc")
    (tmp_path / "mine.mrc.json").write_text("{not json")
    with pytest.raises(DedkitError, match="not a specimen sidecar"):
        read_specimen(tmp_path / "mine.mrc")


# ----- dedkit sim specimen ----------------------------------------------------------------


@pytest.mark.slow  # abTEM multislice (and its first compilation)
def test_cli_writes_the_specimen_and_reports_the_cache(cache, specimen, tmp_path, cli):
    out = tmp_path / "gold.mrc"
    args = ["sim", "specimen", "-o", out, "--field", "40", "--sampling", "0.4",
            "--diameter", "1.5,2", "--carbon", "1", "--preview", tmp_path / "gold.png"]  # fmt: skip
    status, stdout, stderr = cli(*args)
    assert status == 0, stderr
    assert "field 40 A at 0.4 A/pixel (100 x 100)" in stdout and "cache miss" in stdout
    assert "on <110>" in stdout
    assert "computing the HRTEM image with abTEM" in stderr
    assert (tmp_path / "gold.png").read_bytes()[:4] == b"\x89PNG"
    status, stdout, stderr = cli(*args[:-2], "--force", "--json")
    assert status == 0, stderr
    report = json.loads(stdout)
    assert report["details"]["cache_hit"] is True and report["counts"]["particles"] >= 1
    assert report["details"]["microscope"]["defocus_A"] == 330.0


@pytest.mark.parametrize(
    "args, words",
    [
        (["--diameter", "2"], "MIN,MAX"),
        (["--diameter", "5,2"], "MIN <= MAX"),
        (["--sampling", "1.5"], "too coarse"),
        (["--field", "30"], "too small"),
        (["--coverage", "2"], "coverage"),
        (["--aperture", "0"], "aperture"),
        (["--preview", "x.txt"], "image suffix"),
    ],
)
def test_cli_bad_options_are_one_line_exit_2(tmp_path, cli, args, words):
    pytest.importorskip("ase")
    pytest.importorskip("abtem")
    status, stdout, stderr = cli("sim", "specimen", "-o", tmp_path / "g.mrc", *args)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert status == 2 and "Traceback" not in stderr, stderr
    assert words in stderr, stderr
    assert len(lines) <= 3 and not (tmp_path / "g.mrc").exists()

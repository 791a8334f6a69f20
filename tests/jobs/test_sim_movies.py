"""``dedkit sim movies`` called directly (:mod:`dedkit.jobs.sim_movies`): the movies read
back in every format, their mdocs give the dose, outputs follow the rules, and written
frame by frame a movie is never complete before its last frame."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from dedkit.camera.frame_dose import frame_doses
from dedkit.errors import DedkitError
from dedkit.io.movies import movie_complete
from dedkit.io.stack import open_stack
from dedkit.jobs.sim_movies import SimMoviesReport, split_into_fractions, write_simulated_movies
from dedkit.report import JobReport

SMALL = dict(movies=2, frames=4, shape=(40, 48))


def _frames(path, **kwargs):
    with open_stack(path, **kwargs) as reader:
        return reader.info, np.stack([reader.read(i) for i in range(len(reader))])


def _listing(folder):
    return sorted(p.name for p in folder.iterdir())


def test_mrc_tif_and_eer_hold_the_same_counts_and_read_back(tmp_path):
    reports = {
        fmt: write_simulated_movies(
            tmp_path / fmt, format=fmt, eer_fractions_per_frame=25, seed=7, **SMALL
        )  # fmt: skip
        for fmt in ("mrc", "tif", "eer")
    }
    assert isinstance(reports["mrc"], SimMoviesReport) and isinstance(reports["mrc"], JobReport)
    assert _listing(tmp_path / "tif") == [
        "movie_0000.tif", "movie_0000.tif.mdoc", "movie_0001.tif", "movie_0001.tif.mdoc",
    ]  # fmt: skip
    for m in range(2):
        info, mrc = _frames(tmp_path / "mrc" / f"movie_{m:04d}.mrc")
        assert info.shape == (4, 40, 48) and info.dtype == np.uint8
        assert info.pixel_size[0] == pytest.approx(1.0)
        _, tif = _frames(tmp_path / "tif" / f"movie_{m:04d}.tif")
        eer_info, eer = _frames(tmp_path / "eer" / f"movie_{m:04d}.eer", eer_group=25)
        assert eer_info.format == "eer" and eer_info.extra["fractions"] == 100
        # one simulation, three encodings (25 fractions: no pixel holds more electrons)
        assert np.array_equal(mrc, tif) and np.array_equal(mrc, eer)
        assert mrc.mean() == pytest.approx(2.0, rel=0.1)
    assert reports["eer"].warnings == [] and reports["eer"].details["lost_counts"] == 0
    first, second = (_frames(tmp_path / "mrc" / f"movie_{m:04d}.mrc")[1] for m in range(2))
    assert not np.array_equal(first, second)


def test_the_same_seed_gives_the_same_movies(tmp_path):
    a = write_simulated_movies(tmp_path / "a", seed=3, **SMALL)
    b = write_simulated_movies(tmp_path / "b", seed=3, **SMALL)
    c = write_simulated_movies(tmp_path / "c", seed=4, **SMALL)
    for name in ("movie_0000.mrc", "movie_0001.mrc"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "c" / name).read_bytes()
    assert a.details["drift_px"] == b.details["drift_px"] != c.details["drift_px"]


@pytest.mark.parametrize("fmt", ["mrc", "tif", "eer"])
def test_the_mdoc_gives_the_dose_pixel_size_and_voltage(tmp_path, fmt):
    write_simulated_movies(tmp_path, format=fmt, dose_per_pixel=3.0, pixel_size=0.5,
                           voltage=200, eer_fractions_per_frame=20, **SMALL)  # fmt: skip
    movie = tmp_path / f"movie_0001.{fmt}"
    # an EER movie's frames are the reader's grouping: any grouping finds its dose
    n = {"eer": 8}.get(fmt, 4)
    found = frame_doses(n, mdoc=f"{movie}.mdoc", frames_name=movie.name)
    assert found.total == pytest.approx(3.0 * 4 / 0.5**2)
    assert found.dose_per_frame == pytest.approx(12.0 * 4 / n)
    assert (found.pixel_size, found.voltage_kv, found.pre_dose) == (0.5, 200.0, 0.0)
    assert "[FrameSet = 0]" in found.source
    text = (tmp_path / f"movie_0001.{fmt}.mdoc").read_text()
    assert f"SubFramePath = X:\\{tmp_path.name}\\movie_0001.{fmt}" in text
    assert ("NumSubFrames = 4" in text) == (fmt != "eer")


def test_existing_outputs_are_refused_before_anything_is_written(tmp_path):
    (tmp_path / "movie_0001.mrc.mdoc").write_text("mine\n")
    with pytest.raises(DedkitError, match="movie_0001.mrc.mdoc: output exists; use --force"):
        write_simulated_movies(tmp_path, **SMALL)
    assert _listing(tmp_path) == ["movie_0001.mrc.mdoc"]
    write_simulated_movies(tmp_path, force=True, **SMALL)
    assert (tmp_path / "movie_0001.mrc.mdoc").read_text().startswith("T = SerialEM")
    assert len(_listing(tmp_path)) == 4


def test_the_folder_is_made_and_bad_options_are_one_line(tmp_path):
    write_simulated_movies(tmp_path / "new", movies=1, frames=1, shape=(8, 8))
    assert _listing(tmp_path / "new") == ["movie_0000.mrc", "movie_0000.mrc.mdoc"]
    (tmp_path / "file").write_text("")
    for kwargs, words in [
        (dict(folder=tmp_path / "file"), "not a folder"),
        (dict(folder=tmp_path / "no" / "such"), "does not exist"),
        (dict(folder=tmp_path / "x", name_pattern="movie"), "same name to several movies"),
        (dict(folder=tmp_path / "x", name_pattern="../m{}"), "gives the file name"),
        (dict(folder=tmp_path / "x", format="dm4"), "mrc, tif, eer"),
        (dict(folder=tmp_path / "x", dose_per_pixel=0), "dose per pixel"),
        (dict(folder=tmp_path / "x", frame_interval=-1), "interval between frames"),
        (dict(folder=tmp_path / "x", seed=-1), "seed"),
    ]:
        with pytest.raises(DedkitError, match=words) as error:
            write_simulated_movies(**{**SMALL, **kwargs})
        assert "\n" not in str(error.value)
    assert not (tmp_path / "x").exists()


def test_an_interrupt_leaves_no_partial_movie(tmp_path):
    def progress(done, total):
        if done == 6:  # in the middle of the second movie
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_simulated_movies(tmp_path, progress=progress, **SMALL)
    # the first movie with its mdoc, nothing of the second, no temporaries
    assert sorted(p.name for p in tmp_path.iterdir()) == ["movie_0000.mrc", "movie_0000.mrc.mdoc"]


def test_progress_counts_frames_over_all_movies(tmp_path):
    seen = []
    write_simulated_movies(tmp_path, progress=lambda d, t: seen.append((d, t)), **SMALL)
    assert seen[-1] == (8, 8) and all(t == 8 for _, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


@pytest.mark.parametrize("fmt", ["mrc", "tif", "eer"])
def test_written_frame_by_frame_a_movie_is_complete_only_at_its_last_frame(tmp_path, fmt):
    states = []

    def sleep(seconds):
        movies = sorted(tmp_path.glob(f"movie_*.{fmt}"))
        latest = movies[-1] if movies else None
        mdoc = latest is not None and (tmp_path / f"{latest.name}.mdoc").exists()
        size = latest.stat().st_size if latest else 0
        complete = movie_complete(latest, mdoc=False)[0] if latest else None
        states.append((seconds, latest and latest.name, size, complete, mdoc))

    write_simulated_movies(tmp_path, format=fmt, interval=5.0, frame_interval=0.25,
                           sleep=sleep, eer_fractions_per_frame=3, **SMALL)  # fmt: skip
    frame_waits = [s for s in states if s[0] == 0.25]
    movie_waits = [s for s in states if s[0] == 5.0]
    assert len(frame_waits) == 2 * 3 and len(movie_waits) == 1
    # between two frames: a truncated movie at its final name, growing, no mdoc yet
    for _, name, size, complete, mdoc in frame_waits:
        assert complete is False and not mdoc, (name, size)
    sizes = [s[2] for s in frame_waits[:3]]
    assert sizes == sorted(sizes) and sizes[0] > 0
    # between movies: the first is complete with its mdoc
    assert movie_waits[0][1:] == ("movie_0000." + fmt, movie_waits[0][2], True, True)
    assert _listing(tmp_path) == [f"movie_000{m}.{fmt}{e}" for m in (0, 1) for e in ("", ".mdoc")]
    with open_stack(
        tmp_path / f"movie_0001.{fmt}", **({"eer_group": 3} if fmt == "eer" else {})
    ) as r:
        assert len(r) == 4


def test_a_watcher_never_takes_a_movie_before_its_last_frame(tmp_path):
    from dedkit.jobs.watch import MovieWatcher

    got = []
    writer = threading.Thread(
        target=write_simulated_movies,
        args=(tmp_path,),
        kwargs=dict(movies=2, frames=4, shape=(32, 32), frame_interval=0.15, interval=0.2),
    )
    with MovieWatcher(tmp_path, settle=0.2, poll=True, poll_interval=0.05) as watcher:
        writer.start()
        deadline = time.monotonic() + 30
        while len(got) < 2 and time.monotonic() < deadline:
            for path in watcher.ready(timeout=0.05):
                got.append((path.name, (tmp_path / f"{path.name}.mdoc").exists()))
                assert movie_complete(path, mdoc=False)[0], path
        writer.join()
    assert [name for name, _ in got] == ["movie_0000.mrc", "movie_0001.mrc"]
    # once the first mdoc is there, the watcher waits for each movie's mdoc too
    assert got[1][1]


def test_split_into_fractions_keeps_every_electron_once_per_pixel_and_fraction():
    rng = np.random.default_rng(0)
    counts = rng.poisson(1.5, size=(20, 30))
    counts[0, 0] = 9  # more than the fractions
    events, clipped = split_into_fractions(counts, 6, rng)
    assert clipped == np.maximum(counts - 6, 0).sum() >= 3 and len(events) == 6
    total = np.zeros_like(counts)
    for e in events:
        pixels = (e[:, 1] // 4) * 30 + e[:, 0] // 4
        assert len(np.unique(pixels)) == len(pixels)  # one event per pixel
        assert e[:, 0].max() < 120 and e[:, 1].max() < 80
        np.add.at(total, (e[:, 1] // 4, e[:, 0] // 4), 1)
    assert np.array_equal(total, np.minimum(counts, 6))
    # the sub-pixel positions are spread over the 4 x 4 grid
    sub = np.concatenate(events) % 4
    assert set(map(tuple, sub)) == {(x, y) for x in range(4) for y in range(4)}

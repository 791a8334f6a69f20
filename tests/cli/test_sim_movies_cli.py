"""``dedkit sim movies FOLDER``: the command's options, its refusals in one line, and a
simulated session aligned end to end by ``dedkit align FOLDER -o OUT/``, which finds the
dose in the mdocs."""

from __future__ import annotations

import csv

import pytest

from dedkit.io.stack import open_stack


def _refused(result, *words):
    assert result.status == 2, result
    assert len(result.err_lines) == 1 and "Traceback" not in result.err, result
    for word in words:
        assert word in result.err, result


def test_sim_movies_writes_the_folder_it_reports(tmp_path, run):
    folder = tmp_path / "frames"
    result = run("sim", "movies", folder, "--movies", "3", "--frames", "2", "--size", "48x32",
                 "--format", "tif", "--name-pattern", "grid1_{:03d}", "--json")  # fmt: skip
    assert result.status == 0, result
    report = result.json
    assert report["counts"] == {"movies": 3, "frames": 6}
    assert report["movies"] == [str(folder / f"grid1_{i:03d}.tif") for i in range(3)]
    assert sorted(p.name for p in folder.iterdir()) == [
        f"grid1_{i:03d}.tif{e}" for i in range(3) for e in ("", ".mdoc")
    ]
    with open_stack(folder / "grid1_002.tif") as reader:
        assert reader.info.shape == (2, 32, 48)
    # the text report says how to align them
    result = run("sim", "movies", tmp_path / "eer", "--movies", "1", "--frames", "2", "--size",
                 "16x16", "--format", "eer", "--eer-fractions-per-frame", "5")  # fmt: skip
    assert result.status == 0, result
    assert result.out.startswith(f"sim movies: wrote 1 movie with its mdoc to {tmp_path}/eer")
    assert "dedkit align" in result.out and "--eer-group 5" in result.out


def test_sim_movies_refuses_in_one_line(tmp_path, run):
    folder = tmp_path / "frames"
    assert (
        run("sim", "movies", folder, "--movies", "1", "--frames", "1", "--size", "8x8").status == 0
    )
    _refused(run("sim", "movies", folder, "--movies", "1", "--frames", "1", "--size", "8x8"),
             "movie_0000.mrc", "--force")  # fmt: skip
    assert run("sim", "movies", folder, "--movies", "1", "--frames", "1", "--size", "8x8",
               "--force").status == 0  # fmt: skip
    _refused(run("sim", "movies", folder, "--size", "512"), "WIDTHxHEIGHT")
    _refused(run("sim", "movies", folder, "--size", "4x4"), "8 x 8")
    _refused(run("sim", "movies", folder, "--movies", "0"), "--movies")
    _refused(run("sim", "movies", folder, "--name-pattern", "same", "--force"), "same name")


def _table(folder):
    with open(folder / "session.csv", newline="") as f:
        return {row["name"]: row for row in csv.DictReader(f)}


@pytest.mark.parametrize(("fmt", "group"), [("mrc", None), ("eer", 5)])
def test_a_simulated_session_is_aligned_with_the_dose_of_its_mdocs(tmp_path, run, fmt, group):
    frames, out = tmp_path / "frames", tmp_path / "aligned"
    result = run("sim", "movies", frames, "--movies", "2", "--frames", "4", "--size", "64x64",
                 "--format", fmt, "--eer-fractions-per-frame", "5", "--pixel-size", "0.8",
                 "--dose-per-pixel", "1.5", "-q")  # fmt: skip
    assert result.status == 0, result
    eer = ["--eer-group", str(group)] if group else []
    result = run("align", frames, "-o", f"{out}/", "--workers", "0", "-q", *eer)
    assert result.status == 0, result
    table = _table(out)
    assert sorted(table) == ["movie_0000", "movie_0001"]
    for row in table.values():
        assert row["status"] == "done" and row["frames"] == "4"
        assert float(row["dose_per_frame"]) == pytest.approx(1.5 / 0.8**2, rel=1e-4)
        assert float(row["total_dose"]) == pytest.approx(4 * 1.5 / 0.8**2, rel=1e-4)
        assert float(row["pixel_size"]) == pytest.approx(0.8)
    # dose known: the dose-weighted sums are there
    assert (out / "movie_0001_DW.mrc").is_file()

"""``dedkit sample``: the files the README's and guides' examples use (issue 13 item 19)."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_sample_writes_the_examples_files_issue_13_item_19(tmp_path, run, snap):
    """Issue 13 item 19: the guides named files a new user does not have; ``dedkit
    sample`` writes them, readable by the commands the guides run on them, and replaces
    a previous sample only with --force, never a folder holding other files."""
    folder = tmp_path / "s"
    r = run("sample", folder, "--json")
    assert r.status == 0, r
    names = set(r.json["files"])
    for name in ["frames.mrc", "frames.tif", "SuperRef.mrc", "defects.txt", "frames.mrc.mdoc",
                 "run_master_0.json", "run_dark_master_0.json", "run_gain.npy"]:  # fmt: skip
        assert name in names
    assert names == {p.name for p in folder.iterdir()}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    h = run("header", folder / "frames.mrc", "--json").json
    assert (h["mode"], h["rotflip"], h["packed_4bit_title"]) == (101, 2, True)
    t = run("header", folder / "frames.tif", "--json").json
    assert (t["nx"], t["ny"], t["nz"]) == (h["nx"], h["ny"], h["nz"])
    assert run("raw", "info", folder / "run_master_0.json").status == 0

    before = snap(folder)
    r = run("sample", folder)
    assert r.status == 2 and "--force" in r.err, r
    assert run("sample", folder, "--force").status == 0
    after = snap(folder)
    assert after.keys() == before.keys()
    # the same seed makes the same data (masters and TIFF hold the time they were written)
    same = [n for n in before if n.endswith((".raw", ".mrc", ".npy", ".txt"))]
    assert same and all(after[n] == before[n] for n in same)

    other = tmp_path / "mine"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    r = run("sample", other, "--force")
    # the shared output rule (dedkit.io.atomic): a folder dedkit did not write is never replaced
    assert r.status == 2 and "not written by dedkit" in r.err, r
    assert [p.name for p in other.iterdir()] == ["keep.txt"]

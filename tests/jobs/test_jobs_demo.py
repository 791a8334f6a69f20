"""The demo and sample jobs called directly (:mod:`dedkit.jobs.demo`): ``dedkit demo``'s
summary against the files it keeps, ``dedkit sample``'s listing against the folder."""

from __future__ import annotations

import json

import pytest

from dedkit.errors import DedkitError
from dedkit.io.stack import open_stack
from dedkit.jobs.demo import DemoSummary, run_demo, write_samples


def test_run_demo_summary_and_files(tmp_path):
    folder = tmp_path / "demo"
    summary = run_demo(folder, n_frames=3, seed=2)
    assert isinstance(summary, DemoSummary)
    assert summary.folder == str(folder) and summary.frames == 3
    for name in (summary.raw_file, summary.gain_file, summary.defects_file, summary.mdoc_file):
        assert (folder / name).is_file(), name
    out = folder / summary.output_file
    assert summary.output_bytes == out.stat().st_size
    assert summary.raw_bytes == (folder / summary.raw_file).stat().st_size
    with open_stack(out) as s:
        assert (s.info.nz, s.info.ny, s.info.nx) == (3, *summary.frame_size)
        assert s.info.dtype.itemsize == 2  # 16-bit, as the text says
    # normalisation brings the frame sum closer to the true dose, and the defect
    # correction the defective pixels
    assert summary.error_normalized_percent < summary.error_raw_percent
    assert summary.defect_error_corrected < summary.defect_error_raw
    assert summary.defect_pixels > 0 and summary.mean_dose > 0
    d = summary.to_dict()
    assert d["frame_size"] == list(summary.frame_size)
    json.dumps(d)  # what --json prints
    assert summary.text().startswith(f"dedkit demo in {folder}")


def test_run_demo_without_a_folder_keeps_nothing():
    summary = run_demo(None, n_frames=2, seed=1)
    assert summary.folder is None
    assert "temporary folder and removed" in summary.text()


def test_write_samples_lists_what_it_wrote(tmp_path):
    folder = tmp_path / "sample"
    listing = write_samples(folder, frames=2, seed=3).to_dict()
    assert listing["folder"] == str(folder) and listing["frames"] == 2
    on_disk = {p.name: p.stat().st_size for p in folder.iterdir()}
    # the manifest (.dedkit-output.json) is completed after the listing is made
    assert set(listing["files"]) == set(on_disk)
    assert {k: v for k, v in listing["files"].items() if not k.startswith(".")} == {
        k: v for k, v in on_disk.items() if not k.startswith(".")
    }
    for name in ("frames.mrc", "frames.tif", "SuperRef.mrc", "defects.txt", "frames.mrc.mdoc"):
        assert name in on_disk
    run = listing["run"]
    for key in ("master", "dark_master", "gain_keV_per_adu"):
        assert (folder / run[key]).is_file()
    assert run["electrons"] > 0 and run["energy_keV"] == 200.0
    with open_stack(folder / "frames.mrc") as s:
        assert s.info.nz == 2 and [s.info.ny, s.info.nx] == listing["frame_size"]
    # a second sample into the same folder needs force, and then replaces it
    with pytest.raises(DedkitError):
        write_samples(folder, frames=2, seed=3)
    again = write_samples(folder, frames=2, seed=3, force=True)
    assert again.files == listing["files"]

"""The sample job called directly (:mod:`dedkit.jobs.demo`): ``dedkit sample``'s listing
against the folder (``dedkit demo`` itself: tests/jobs/test_demo_shell.py)."""

from __future__ import annotations

import pytest

from dedkit.errors import DedkitError
from dedkit.io.stack import open_stack
from dedkit.jobs.demo import write_samples


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

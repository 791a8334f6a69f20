"""``dedkit sim electrons``: bad parameters (no Geant4 needed) and a small run."""

import math

import pytest

from dedkit.io.deposits import read_deposits
from dedkit.sim.transport import geant4_available

needs_geant4 = pytest.mark.skipif(
    not geant4_available(),
    reason="Geant4 is not installed: pip install -c constraints.txt '.[sim]'",
)

BASE = ["sim", "electrons", "--seed", "1"]


@pytest.mark.parametrize(
    "args, words",
    [
        (["--energy", "-5", "--n", "10"], "energy -5 keV is outside 1-1000 keV"),
        (["--energy", "0", "--n", "10"], "energy 0 keV is outside 1-1000 keV"),
        (["--energy", "5000", "--n", "10"], "energy 5000 keV is outside 1-1000 keV"),
        (["--energy", "200", "--n", "0"], "number of electrons must be a positive integer"),
        (["--energy", "200", "--n", "-3"], "number of electrons must be a positive integer"),
        (["--energy", "200", "--n", "10", "--workers", "0"], "workers must be a positive"),
        (["--energy", "200", "--n", "10", "--workers", "-2"], "workers must be a positive"),
        (["--energy", "200", "--n", "10", "--area", "20", "20"], "larger than the sensor"),
        (["--energy", "200", "--n", "10", "--pitch", "0"], "pitch_um must be positive"),
        (["--energy", "200", "--n", "10", "--thickness", "-1"], "thickness_um must be positive"),
        (["--energy", "200", "--n", "10", "--size", "0", "10"], "nx must be at least 1"),
        (["--energy", "200", "--n", "10", "--physics", "option4"], "Goudsmit-Saunderson"),
        (["--energy", "200", "--n", "10", "--physics", "nope"], "unknown physics list"),
        (["--energy", "200", "--n", "10", "--incidence", "90"], "outside 0-85 degrees"),
        (["--energy", "200", "--n", "10", "--size", "9", "9", "--nx", "4"], "not both"),
    ],
)
def test_bad_parameters_one_line_exit_2(run, tmp_path, args, words):
    out = tmp_path / "out.h5"
    r = run(*BASE, *args, "-o", out)
    assert r.status == 2, r
    assert len(r.err_lines) == 1 and words in r.err and "Traceback" not in r.err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_missing_geant4_is_one_line(run, tmp_path, monkeypatch):
    from dedkit.sim.transport import simulate as transport

    monkeypatch.setattr(transport, "geant4_available", lambda: False)
    r = run(*BASE, "--energy", "200", "--n", "10", "-o", tmp_path / "out.h5")
    assert r.status == 2
    assert r.err.strip() == (
        "dedkit: error: Geant4 is not installed: pip install -c constraints.txt '.[sim]'"
    )


@needs_geant4
def test_small_run_writes_the_deposits_and_reports(run, tmp_path):
    out = tmp_path / "e.h5"
    args = [*BASE, "--energy", "100", "--n", "60", "--size", "40", "40", "--workers", "1"]
    r = run(*args, "--physics", "standard", "--json", "-o", out)
    assert r.status == 0, r
    report = r.json
    for key in (
        "n_primaries",
        "backscatter_fraction",
        "mean_deposit_keV",
        "full_absorption_fraction",
        "events_per_s",
    ):
        assert key in report
    assert report["n_primaries"] == 60 and report["workers"] == 1
    assert 0 < report["backscatter_fraction"] < 0.5 and report["events_per_s"] > 0
    d = read_deposits(out)
    assert len(d) == 60 and d.physics == "standard" and d.sensor.nx == 40
    assert math.isclose(report["mean_deposit_keV"], d.deposit_keV.mean())
    assert report["full_absorption_fraction"] == (d.deposit_keV >= 95.0).mean()
    # the output is not replaced without --force; with it the same seed gives the same file
    again = run(*args, "-o", out)
    assert again.status == 2 and "use --force" in again.err
    text = run(*args, "--physics", "standard", "--force", "-o", out)
    assert text.status == 0 and "wrote" in text.out and "backscattered" in text.out
    assert (read_deposits(out).deposit_keV == d.deposit_keV).all()

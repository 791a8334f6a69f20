"""``dedkit study ...``: tables, JSON reports, figures only when asked, one-line errors."""

from __future__ import annotations

import importlib.util

import pytest

from dedkit.studies import StudyResult, render_table

PNG = b"\x89PNG\r\n\x1a\n"
FAST_DQE = ["study", "rounding-dqe", "--samples", "100000", "--doses", "0.1,1"]
FAST_FRC = ["study", "reduction-frc", "--size", "128", "--repeats", "2", "--doses", "20"]


def assert_refused(r, *words):
    assert r.status == 2, r
    assert "Traceback" not in r.out + r.err
    assert len(r.err_lines) == 1 and r.err_lines[0].startswith("dedkit"), r
    for w in words:
        assert w in r.err_lines[0], r


def test_render_table_aligns_and_formats():
    result = StudyResult(
        name="demo",
        columns=[("a", "A", ".2f"), ("b", "long heading", ""), ("c", "C", "d")],
        rows=[{"a": 1.234, "b": "all", "c": 3}, {"a": None, "b": 0.5, "c": 12}],
        report={},
        notes=["a note"],
    )
    lines = render_table(result).splitlines()
    assert lines[0] == "demo"
    assert lines[1].split() == ["A", "long", "heading", "C"]
    assert lines[2].split() == ["1.23", "all", "3"] and lines[3].split() == ["-", "0.5", "12"]
    assert len({len(x) for x in lines[1:4]}) == 1  # aligned
    assert lines[-1] == "a note"


def test_rounding_dqe_table(run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = run(*FAST_DQE)
    assert r.status == 0, r
    lines = r.out.splitlines()
    assert lines[0] == "rounding-dqe" and "abs loss" in lines[1] and "seed" in lines[1]
    assert lines[2].split()[0] == "0.1" and lines[2].split()[-1] == "0.0005"
    assert list(tmp_path.iterdir()) == []  # no figure unless asked


def test_rounding_dqe_json_is_the_report_only(run):
    r = run(*FAST_DQE, "--json", "--seed", "4")
    assert r.status == 0, r
    rows = r.json["rows"]
    assert [row["dose"] for row in rows] == [0.1, 1.0]
    for row in rows:
        assert {"abs_loss", "abs_loss_err", "rel_loss", "rel_loss_err", "seed_table"} <= set(row)
    assert rows[0]["seed_table"] == 0.0005 and rows[1]["seed_table"] == 0.0003
    again = run(*FAST_DQE, "--json", "--seed", "4")
    assert again.json == r.json


def test_reduction_frc_json(run):
    r = run(*FAST_FRC, "--json")
    assert r.status == 0, r
    factors = r.json["factors"]
    assert set(factors) == {"2", "4"}
    assert {"gain_percent", "gain_percent_err"} <= set(factors["2"])


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="no matplotlib")
def test_figure_written_when_asked_and_protected(run, tmp_path):
    fig = tmp_path / "frc.png"
    r = run(*FAST_FRC, "--figure", fig)
    assert r.status == 0, r
    assert fig.read_bytes()[:8] == PNG and f"figure written to {fig}" in r.out
    fig.write_bytes(b"old")
    assert_refused(run(*FAST_FRC, "--figure", fig), "--force")
    assert fig.read_bytes() == b"old"
    r = run(*FAST_FRC, "--figure", fig, "--force", "--json")
    assert r.status == 0 and r.json["factors"]  # stdout holds the JSON alone
    assert "figure written" in r.err
    assert fig.read_bytes()[:8] == PNG
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frc.png"]


def test_without_matplotlib_the_table_is_still_printed(run, tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name)
    )
    fig = tmp_path / "dqe.png"
    r = run(*FAST_DQE, "--figure", fig)
    assert r.status == 0, r
    assert r.out.startswith("rounding-dqe")
    assert r.err_lines == [
        "dedkit study rounding-dqe: no figure written: matplotlib is not installed "
        "(pip install matplotlib)"
    ]
    assert not fig.exists()


def test_coincidence_study_renders_the_same_way(run):
    r = run("study", "coincidence")
    assert r.status == 0, r
    assert r.out.splitlines()[0] == "coincidence"
    r = run("study", "coincidence", "--json", "--cameras", "K3", "--k2-rates", "5,10")
    assert r.status == 0, r
    assert list(r.json["cameras"]) == ["K3"]
    assert_refused(run("study", "coincidence", "--cameras", "CCD"), "count")


@pytest.mark.parametrize(
    "args, words",
    [
        (["rounding-dqe", "--doses", "a,b"], ["--doses"]),
        (["rounding-dqe", "--samples", "10"], ["--samples"]),
        (["reduction-frc", "--factors", "2.5"], ["--factors"]),
        (["reduction-frc", "--size", "100", "--repeats", "2"], ["multiple"]),
        (["reduction-frc", "--repeats", "1", "--size", "128"], ["repeats"]),
        (["rounding-dqe", "--figure", "out.jpg"], [".png, .pdf, .svg"]),
        (["nosuch"], ["nosuch"]),
        # issue 13 item 11: every study option is bounded, exit 2 before any allocation
        (["reduction-frc", "--size", "1000000"], ["--size", "4096"]),
        (["reduction-frc", "--repeats", "100000000"], ["--repeats"]),
        (["reduction-frc", "--doses", "1e12"], ["--doses", "out of range"]),
        (["reduction-frc", "--doses", "nan"], ["--doses"]),
        (["reduction-frc", "--doses", ",".join(["5"] * 40)], ["--doses", "at most 32"]),
        (["reduction-frc", "--factors", "2,1024"], ["--factors", "out of range"]),
        (["reduction-frc", "--factors", "1"], ["--factors"]),
        (["reduction-frc", "--sigma", "1e6"], ["--sigma"]),
        (["reduction-frc", "--contrast", "-1"], ["--contrast"]),
        (["reduction-frc", "--slope", "inf"], ["--slope"]),
        (["reduction-frc", "--dose-rate", "0"], ["--dose-rate"]),
        (["reduction-frc", "--specimen", "banana"], ["--specimen"]),
        (["reduction-frc", "--size", "8", "--factors", "2"], ["--size"]),
        (["reduction-frc", "--size", "4090", "--repeats", "2"], ["multiple"]),
        (["rounding-dqe", "--samples", "1000000000000"], ["--samples"]),
        (["rounding-dqe", "--doses", "1e300"], ["--doses"]),
        (["coincidence", "--pixels", "99999999999999999999999"], ["--pixels"]),
        (["coincidence", "--exposure", "0"], ["--exposure"]),
        (["coincidence", "--k2-rates", "inf"], ["--k2-rates"]),
        (["coincidence", "--k2-rates", "40"], ["38.5"]),
    ],
)
def test_bad_options(run, tmp_path, monkeypatch, args, words):
    monkeypatch.chdir(tmp_path)
    assert_refused(run("study", *args), *words)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args",
    [FAST_FRC, FAST_DQE, ["study", "coincidence", "--k2-rates", "5"]],
    ids=["reduction-frc", "rounding-dqe", "coincidence"],
)
def test_studies_draw_a_progress_bar(run, monkeypatch, args):
    """issue 13 item 20: every study runs under dedkit's progress bar (drawn on
    terminals only), fed by the study's progress(done, total); --quiet turns it off."""
    import contextlib

    import dedkit.cli.study as cli_study

    seen = []

    @contextlib.contextmanager
    def recording_bar(label, *, quiet=False):
        seen.append(("open", label, quiet))
        yield None if quiet else (lambda done, total: seen.append((done, total)))

    monkeypatch.setattr(cli_study, "progress_bar", recording_bar)
    assert run(*args).status == 0
    assert seen[0] == ("open", args[1], False)
    steps = seen[1:]
    assert steps and steps[0][0] == 0 and steps[-1][0] == steps[-1][1] > 0
    assert [d for d, _ in steps] == sorted(d for d, _ in steps)
    seen.clear()
    assert run(*args, "--quiet").status == 0
    assert seen == [("open", args[1], True)]


def test_reduction_frc_specimen_option(run):
    """issue 13 item 21: --specimen chooses the specimen; help explains both."""
    r = run(*FAST_FRC, "--json", "--specimen", "power-law")
    assert r.status == 0, r
    assert r.json["settings"]["specimen"] == "power-law"
    assert run(*FAST_FRC, "--json").json["settings"]["specimen"] == "band-limited"
    text = run("study", "reduction-frc", "--help").out
    assert "band-limited" in text and "power-law" in text and "default" in text

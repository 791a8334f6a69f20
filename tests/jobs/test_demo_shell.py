"""``dedkit demo``'s shell (:func:`dedkit.jobs.demo.run_demo` and the command) with fake
parts: the folder layout for one part and for both, ``report.html`` that opens from the
file (no network, figures inline), ``report.json``, ``--force`` and the exit status.

The real parts (the counting camera, the MÖNCH gold nanoparticles) take minutes and are
tested in their own files; here each part is a fake writing a real PNG figure and a file.
"""

from __future__ import annotations

import base64
import datetime
import json
import struct
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

import dedkit
from dedkit.errors import DedkitError
from dedkit.io.atomic import MARKER
from dedkit.jobs import demo as demo_module
from dedkit.jobs.demo import DEMO_PARTS, PART_FUNCTIONS, DemoSummary, run_demo, write_samples
from dedkit.jobs.demo_part import DemoCheck, DemoPart


def png(width: int = 4, height: int = 3) -> bytes:
    """A real (tiny, grey gradient) PNG, made without matplotlib."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\0" + bytes((x * 40 + y * 20) % 256 for x in range(width))
                   for y in range(height))  # fmt: skip
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))  # fmt: skip


class FakePart:
    """A demo part: writes ``figure.png`` and ``image_cnn.mrc`` into its folder and
    reports two checks (the second one failing when ``fail``)."""

    def __init__(self, name: str, *, fail: bool = False, error: Exception | None = None):
        self.name, self.fail, self.error = name, fail, error
        self.calls: list[dict] = []

    def __call__(self, folder, *, full=False, seed=1, progress=None):
        folder = Path(folder)
        self.calls.append({"folder": folder, "full": full, "seed": seed})
        assert folder.is_dir() and folder.is_absolute()
        (folder / "figure.png").write_bytes(png())
        (folder / "image_cnn.mrc").write_bytes(b"\0" * 1024)
        if progress is not None:
            progress(1, 2, "step one")
            progress(2, 2, step="step two")
        if self.error is not None:
            raise self.error
        return DemoPart(
            name=self.name,
            title=f"the fake {self.name} part",
            rows=[{"localiser": "cnn", "ring SNR": 7.25}, {"localiser": "centroid",
                                                           "ring SNR": 1.5}],
            checks=[
                DemoCheck(f"{self.name} ring SNR, cnn", "7.25", ">= 5", True),
                DemoCheck(f"{self.name} ring SNR, centroid", "1.5", "< 3", not self.fail),
            ],
            # one path absolute, one relative to the part's folder: both are accepted
            figures={"the <fake> figure": str(folder / "figure.png")},
            files={"CNN image": "image_cnn.mrc"},
            seconds=0.01,
            details={"seed": seed, "full": full},
        )  # fmt: skip


@pytest.fixture
def fakes(monkeypatch):
    """The parts replaced by fakes; returns them, by name (replace one to change it)."""
    parts = {name: FakePart(name) for name in DEMO_PARTS}
    monkeypatch.setattr(demo_module, "_part_runner", lambda name: parts[name])
    # the real hpd part's specimen and track library are not computed for fake parts
    monkeypatch.setattr(demo_module._Prefetch, "enabled", False)
    return parts


class Page(HTMLParser):
    """What a browser would fetch from a page: every src and href, images, scripts."""

    def __init__(self, text: str):
        super().__init__()
        self.links: list[tuple[str, str, str]] = []
        self.tags: list[str] = []
        self.text: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for key, value in attrs:
            if key in ("src", "href", "srcset", "data", "action", "poster"):
                self.links.append((tag, key, value or ""))

    def handle_data(self, data):
        self.text.append(data)


# ------------------------------------------------------------------------- folder layout


def test_one_part_writes_into_the_folder_itself(tmp_path, fakes):
    folder = tmp_path / "out"
    summary = run_demo(folder, parts=["hpd"], seed=7)
    assert isinstance(summary, DemoSummary) and summary.passed
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [MARKER, "figure.png", "image_cnn.mrc", "report.html", "report.json"]
    )
    assert fakes["camera"].calls == []
    (call,) = fakes["hpd"].calls
    assert call["seed"] == 7 and call["full"] is False
    (part,) = summary.parts
    assert part["figures"] == {"the <fake> figure": "figure.png"}
    assert part["files"] == {"CNN image": "image_cnn.mrc"}
    # nothing left beside the folder (the temporary was renamed into place)
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_both_parts_write_a_subfolder_each_in_order(tmp_path, fakes):
    folder = tmp_path / "out"
    summary = run_demo(folder, parts=("hpd", "camera", "hpd"), full=True)
    assert [p["name"] for p in summary.parts] == ["camera", "hpd"]
    assert {p.name for p in folder.iterdir()} == {MARKER, "camera", "hpd", "report.html",
                                                   "report.json"}  # fmt: skip
    for name in DEMO_PARTS:
        assert sorted(p.name for p in (folder / name).iterdir()) == ["figure.png",
                                                                     "image_cnn.mrc"]  # fmt: skip
        assert fakes[name].calls[0]["full"] is True
    assert summary.parts[0]["figures"] == {"the <fake> figure": "camera/figure.png"}
    assert summary.parts[1]["files"] == {"CNN image": "hpd/image_cnn.mrc"}


def test_default_folder_is_dedkit_demo(tmp_path, fakes, monkeypatch):
    monkeypatch.chdir(tmp_path)
    summary = run_demo(parts=["camera"])
    assert summary.folder == "dedkit-demo"
    assert (tmp_path / "dedkit-demo" / "report.html").is_file()
    assert summary.report_html == str(Path("dedkit-demo") / "report.html")


def test_progress_names_the_part_and_its_step(tmp_path, fakes):
    seen = []
    run_demo(tmp_path / "out", progress=lambda done, total, label: seen.append(
        (done, total, label)))  # fmt: skip
    assert seen == [
        (0, None, "camera"), (1, 2, "camera: step one"), (2, 2, "camera: step two"),
        (0, None, "hpd"), (1, 2, "hpd: step one"), (2, 2, "hpd: step two"),
    ]  # fmt: skip


# ---------------------------------------------------------------------------- report.html


def test_report_html_is_self_contained_and_opens(tmp_path, fakes):
    fakes["hpd"] = FakePart("hpd", fail=True)
    folder = tmp_path / "out"
    summary = run_demo(folder)
    text = (folder / "report.html").read_text(encoding="utf-8")
    page = Page(text)  # parses without error
    assert text.startswith("<!DOCTYPE html>") and page.tags[0] == "html"
    assert "script" not in page.tags and "link" not in page.tags and "iframe" not in page.tags
    assert "@import" not in text and "url(" not in text
    images = [value for tag, key, value in page.links if tag == "img"]
    assert len(images) == 2
    for value in images:
        assert value.startswith("data:image/png;base64,")
        assert base64.b64decode(value.split(",", 1)[1]) == png()
    for tag, _, value in page.links:
        assert not value.lower().startswith(("http:", "https:", "//", "file:")), value
        if tag == "a":
            # relative links to the files the parts wrote, and to report.json
            assert (folder / value).is_file(), value
    hrefs = {value for tag, _, value in page.links if tag == "a"}
    assert {"camera/image_cnn.mrc", "hpd/image_cnn.mrc", "report.json"} <= hrefs
    words = " ".join(page.text)
    # the header: version, date, machine, time per part
    assert dedkit.__version__ in words and summary.date in words
    assert f"{summary.machine['cores']} cores" in words
    for part in summary.parts:
        assert f"{part['name']} {part['wall_seconds']:.1f} s" in words
    # each part: title, checks with marks, rows, captions (escaped)
    for name in DEMO_PARTS:
        assert f"the fake {name} part" in words
    assert words.count("PASS") == 3 and words.count("FAIL") == 1
    assert "the <fake> figure" in words and "&lt;fake&gt;" in text
    assert "centroid" in words and "7.25" in words
    assert "1 check(s) failed" in words


# ---------------------------------------------------------------------------- report.json


def test_report_json_holds_the_summary_and_the_parts(tmp_path, fakes):
    fakes["camera"] = FakePart("camera", fail=True)
    folder = tmp_path / "out"
    summary = run_demo(folder, seed=3)
    data = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    assert data == json.loads(json.dumps(summary.to_dict()))
    assert data["command"] == "demo" and data["folder"] == str(folder)
    assert data["passed"] is False
    assert data["failed"] == ["camera: camera ring SNR, centroid (1.5, target < 3)"]
    assert data["seed"] == 3 and data["full"] is False and data["dedkit"] == dedkit.__version__
    assert datetime.datetime.fromisoformat(data["date"]).tzinfo is not None
    assert data["machine"]["cores"] >= 1 and data["machine"]["usable_cores"] >= 1
    assert data["report_html"] == str(folder / "report.html")
    camera, hpd = data["parts"]
    assert (camera["passed"], hpd["passed"]) == (False, True)
    assert camera["checks"][1] == {"what": "camera ring SNR, centroid", "value": "1.5",
                                   "target": "< 3", "passed": False}  # fmt: skip
    assert hpd["rows"][0] == {"localiser": "cnn", "ring SNR": 7.25}
    assert hpd["details"] == {"seed": 3, "full": False}
    assert hpd["wall_seconds"] >= 0 and data["seconds"] >= hpd["wall_seconds"]


def test_missing_figure_is_a_warning_not_a_crash(tmp_path, fakes):
    def part(folder, *, full=False, seed=1, progress=None):
        return DemoPart(name="camera", title="t", rows=[], checks=[], seconds=0.0,
                        details={}, figures={"gone": "nowhere.png"},
                        files={"elsewhere": "/etc/hostname"})  # fmt: skip

    fakes["camera"] = part
    summary = run_demo(tmp_path / "out", parts=["camera"])
    assert any("nowhere.png" in w and "not written" in w for w in summary.warnings)
    assert any("outside the demo folder" in w for w in summary.warnings)
    assert "nowhere.png: not written" in (tmp_path / "out" / "report.html").read_text()


# ------------------------------------------------------------------------- force, errors


def test_force_replaces_only_a_previous_demo(tmp_path, fakes):
    folder = tmp_path / "out"
    run_demo(folder, parts=["camera"])
    with pytest.raises(DedkitError, match="--force"):
        run_demo(folder, parts=["camera"])
    summary = run_demo(folder, parts=["hpd"], force=True)  # a demo replaces a demo
    assert summary.parts[0]["name"] == "hpd"
    assert json.loads((folder / "report.json").read_text())["parts"][0]["name"] == "hpd"
    # a file of the user's added: the folder is no longer only dedkit's
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(DedkitError, match="did not write"):
        run_demo(folder, force=True)
    assert (folder / "notes.txt").read_text() == "mine"
    # a folder of the user's, or another kind of dedkit folder, is never replaced
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "data.mrc").write_bytes(b"1")
    with pytest.raises(DedkitError, match="not written by dedkit"):
        run_demo(mine, force=True)
    assert (mine / "data.mrc").read_bytes() == b"1"
    sample = tmp_path / "sample"
    write_samples(sample, frames=1)
    before = sorted(p.name for p in sample.iterdir())
    with pytest.raises(DedkitError, match="sample"):
        run_demo(sample, force=True)
    assert sorted(p.name for p in sample.iterdir()) == before
    assert len(fakes["hpd"].calls) == 1  # refused before any part ran


def test_an_empty_folder_is_used(tmp_path, fakes):
    folder = tmp_path / "out"
    folder.mkdir()
    assert run_demo(folder, parts=["camera"]).passed
    assert (folder / "report.html").is_file()


def test_a_failing_part_leaves_nothing(tmp_path, fakes):
    fakes["hpd"] = FakePart("hpd", error=DedkitError("the specimen is empty"))
    with pytest.raises(DedkitError, match="the specimen is empty"):
        run_demo(tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_a_missing_optional_dependency_is_one_line(tmp_path, fakes):
    fakes["hpd"] = FakePart("hpd", error=ModuleNotFoundError("no abtem", name="abtem"))
    with pytest.raises(DedkitError, match=r"hpd part of dedkit demo needs abtem.*pip install"):
        run_demo(tmp_path / "out", parts=["hpd"])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("parts", [["gold"], [], "k3"])
def test_unknown_or_no_part(tmp_path, fakes, parts):
    with pytest.raises(DedkitError, match="part"):
        run_demo(tmp_path / "out", parts=parts)
    assert list(tmp_path.iterdir()) == []


def test_the_part_functions_are_where_the_contract_says():
    assert PART_FUNCTIONS == {"camera": ("dedkit.jobs.demo_camera", "run_camera_demo"),
                              "hpd": ("dedkit.jobs.gold", "run_gold_demo")}  # fmt: skip
    for name, (module, function) in PART_FUNCTIONS.items():
        try:
            runner = demo_module._part_runner(name)
        except ModuleNotFoundError as error:
            if error.name == module:
                continue  # the part's module is not there yet
            raise
        assert callable(runner) and runner.__name__ == function


# ----------------------------------------------------------------------------- the command


def test_command_all_checks_pass(tmp_path, fakes, cli):
    folder = tmp_path / "out"
    status, out, err = cli("demo", "-o", folder, "--seed", 5)
    assert status == 0, err
    assert out.rstrip().splitlines()[-1] == f"report: {folder / 'report.html'}"
    assert "all 4 checks passed" in out
    check_lines = [line for line in out.splitlines() if line.rstrip().endswith("PASS")]
    assert len(check_lines) == 4
    assert "camera ring SNR, cnn" in check_lines[0] and ">= 5" in check_lines[0]
    assert fakes["camera"].calls[0]["seed"] == 5
    assert err == ""


def test_command_one_part_and_json(tmp_path, fakes, cli):
    folder = tmp_path / "out"
    status, out, err = cli("demo", "hpd", "-o", folder, "--full", "--json")
    assert status == 0, err
    data = json.loads(out)
    assert [p["name"] for p in data["parts"]] == ["hpd"] and data["full"] is True
    assert (folder / "image_cnn.mrc").is_file() and not (folder / "hpd").exists()
    assert fakes["camera"].calls == []


def test_command_a_failed_check_exits_1_and_says_which(tmp_path, fakes, cli):
    fakes["camera"] = FakePart("camera", fail=True)
    status, out, err = cli("demo", "-o", tmp_path / "out")
    assert status == 1
    assert "1 of 4 checks FAILED" in out and "camera ring SNR, centroid" in out
    assert len([line for line in out.splitlines() if line.rstrip().endswith("FAIL")]) == 1
    assert err.splitlines() == [
        "dedkit demo: 1 check(s) failed: camera: camera ring SNR, centroid (1.5, target < 3)"
    ]
    assert (tmp_path / "out" / "report.html").is_file()  # the report is written anyway


def test_command_errors_exit_2_in_one_line(tmp_path, fakes, cli):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    status, out, err = cli("demo", "-o", folder)
    assert status == 2 and out == ""
    assert len(err.splitlines()) == 1 and "--force" in err and "Traceback" not in err
    fakes["hpd"] = FakePart("hpd", error=DedkitError("bad things", path="x.h5"))
    status, out, err = cli("demo", "hpd", "-o", tmp_path / "other")
    assert status == 2 and err.strip() == "dedkit: error: x.h5: bad things"
    status, out, err = cli("demo", "gold")
    assert status == 2 and len(err.splitlines()) == 1 and "gold" in err


def test_command_help_shows_the_defaults(cli):
    status, out, _ = cli("demo", "--help")
    assert status == 0
    for words in ("[PART]", "camera", "hpd", "default: dedkit-demo", "--full", "--force",
                  "[default: 1]", "--json", "report.html"):  # fmt: skip
        assert words in " ".join(out.split()), words


def test_prefetch_starts_only_for_both_parts_and_is_stopped(monkeypatch):
    started = []

    class FakeProcess:
        def __init__(self, target, kwargs):
            started.append((target.__name__, kwargs))
            self.joined = False

        def start(self):
            pass

        def join(self):
            self.joined = True

        def terminate(self):
            started.append("terminated")

    import multiprocessing

    class Context:
        Process = FakeProcess

    monkeypatch.setattr(multiprocessing, "get_context", lambda kind: Context)
    with demo_module._Prefetch(("hpd",), False, 1):
        pass
    assert started == []
    with demo_module._Prefetch(("camera", "hpd"), True, 3) as prefetch:
        assert started == [("_prefetch", {"full": True, "seed": 3})]
        prefetch.wait()
    assert "terminated" not in started
    with demo_module._Prefetch(("camera", "hpd"), False, 1):
        pass  # interrupted before the hpd part: the process is stopped
    assert started[-1] == "terminated"


def test_the_prefetch_process_is_silent_when_it_fails(monkeypatch, capsys):
    import dedkit.jobs.gold as gold

    def fail(**kwargs):
        raise RuntimeError("no Geant4 here")

    monkeypatch.setattr(gold, "prepare_gold_demo", fail)
    demo_module._prefetch(full=False, seed=1)
    assert capsys.readouterr().err == ""

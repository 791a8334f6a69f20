"""Output safety across commands (issue 13 items 1, 2, 7 and 10): --force never deletes
what dedkit did not write, every output is checked against every input, a full disk
ends in one line with nothing left behind, SIGTERM/SIGHUP are handled as Ctrl-C."""

from __future__ import annotations

import pytest

from dedkit.io.atomic import MARKER


@pytest.fixture
def stack(mk):
    """data/in.mrc: a small 3-frame stack in a folder of its own."""
    (mk.folder / "data").mkdir()
    return mk.mrc("data/in.mrc", mk.counts())


def _refused(r, *words):
    assert r.status == 2, r
    assert len(r.err_lines) == 1 and r.err.startswith("dedkit"), r
    assert "Traceback" not in r.out + r.err
    for w in words:
        assert w in r.err, r


def _fake_demo_parts(monkeypatch):
    """``dedkit demo``'s parts replaced by one that writes a file and checks nothing (the
    real ones take minutes)."""
    from dedkit.jobs import demo
    from dedkit.jobs.demo_part import DemoPart

    def part(folder, *, full=False, seed=1, progress=None):
        (folder / "image.mrc").write_bytes(b"0")
        return DemoPart(name="camera", title="fake", rows=[], checks=[], figures={},
                        files={"image": "image.mrc"}, seconds=0.0, details={})  # fmt: skip

    monkeypatch.setattr(demo, "_part_runner", lambda name: part)


# ----------------------------------------------------------------------------- item 1


def test_issue13_item1_force_never_deletes_the_folder_holding_the_input(mk, stack, run, snap):
    # dedkit convert data/in.mrc data --force
    before = snap(mk.folder)
    r = run("convert", stack, mk.folder / "data", "--force")
    _refused(r, "would hold the input")
    assert snap(mk.folder) == before


def test_issue13_item1_force_never_empties_an_unrelated_folder(mk, stack, run, snap):
    # dedkit convert in.mrc mydata --force
    mydata = mk.folder / "mydata"
    mydata.mkdir()
    (mydata / "thesis.tex").write_text("years of work")
    (mydata / "sub").mkdir()
    (mydata / "sub" / "frames_001.tif").write_bytes(b"not dedkit's")
    before = snap(mk.folder)
    r = run("convert", stack, mydata, "--force")
    _refused(r, "not written by dedkit")
    assert snap(mk.folder) == before


def test_issue13_item1_a_file_output_never_replaces_a_folder(mk, stack, run, snap):
    # dedkit convert in.mrc out.mrc --force, where out.mrc/ is a folder
    out = mk.folder / "out.mrc"
    out.mkdir()
    (out / "keep").write_text("mine")
    before = snap(mk.folder)
    for force in ([], ["--force"]):
        r = run("convert", stack, out, *force)
        _refused(r, "existing folder")
        assert snap(mk.folder) == before
    # the same for an empty folder: a file never takes a folder's place
    (out / "keep").unlink()
    _refused(run("convert", stack, out, "--force"), "existing folder")
    assert out.is_dir()


def test_issue13_item1_force_replaces_a_dedkit_folder_of_the_same_kind_only(
    mk, stack, run, monkeypatch
):
    frames = mk.folder / "frames"
    assert run("convert", stack, frames).status == 0
    assert (frames / MARKER).is_file()
    # a dedkit folder of the same kind, holding only what dedkit wrote: replaced
    r = run("convert", stack, frames, "--force")
    assert r.status == 0, r
    # ... unless someone put a file of their own in it
    (frames / "notes.txt").write_text("mine")
    _refused(run("convert", stack, frames, "--force"), "did not write", "notes.txt")
    assert (frames / "notes.txt").read_text() == "mine"
    (frames / "notes.txt").unlink()
    # a dedkit folder of another kind (a demo) is not replaced by numbered images
    demo = mk.folder / "demo"
    _fake_demo_parts(monkeypatch)
    assert run("demo", "camera", "-o", demo).status == 0
    before = sorted(p.name for p in demo.iterdir())
    _refused(run("convert", stack, demo, "--force"), "demo")
    assert sorted(p.name for p in demo.iterdir()) == before


def test_issue13_item1_changed_or_forged_files_are_never_replaced(mk, stack, run):
    """A file dedkit listed but that was edited since, or a manifest copied into a folder
    of the user's, does not make the user's files dedkit's to delete."""
    import os
    import shutil

    frames = mk.folder / "frames"
    assert run("convert", stack, frames).status == 0
    first = sorted(p.name for p in frames.iterdir() if p.name != MARKER)[0]
    # edited in place (same name, new content and time)
    (frames / first).write_bytes(b"my edit")
    _refused(run("convert", stack, frames, "--force"), "changed", first)
    assert (frames / first).read_bytes() == b"my edit"
    # a manifest copied into a folder of the user's, a file of theirs under a listed name
    mine = mk.folder / "mine"
    mine.mkdir()
    shutil.copy(frames / MARKER, mine / MARKER)
    (mine / first).write_bytes(b"my data")
    os.utime(mine / first, ns=(1, 1))
    _refused(run("convert", stack, mine, "--force"), "changed", first)
    assert (mine / first).read_bytes() == b"my data"


def test_issue13_item1_sim_frames_replaces_only_its_own_folder(tmp_path, run):
    out = tmp_path / "run"
    out.mkdir()
    (out / "sim_master_0.json").write_text("{}")  # named like a run, but not dedkit's
    r = run("sim", "frames", "-E", 200, "--frames", 1, "--flux", 1, "--dark-frames", 1,
            "-o", out, "--force")  # fmt: skip
    _refused(r, "not written by dedkit")
    assert (out / "sim_master_0.json").read_text() == "{}"


# ----------------------------------------------------------------------------- item 10


def test_issue13_item10_failed_final_rename_leaves_no_temporary(mk, stack, run):
    """convert in.mrc result --force where result is a file: refused, nothing left."""
    result = mk.folder / "result"
    result.write_text("a file")
    _refused(run("convert", stack, result, "--force"), "not a folder")
    assert result.read_text() == "a file"
    assert not [p for p in mk.folder.iterdir() if p.name.startswith(".")]


def test_issue13_item10_atomic_output_removes_the_temporary_when_the_rename_fails(tmp_path):
    from dedkit.io.atomic import atomic_output

    target = tmp_path / "result"
    target.write_text("a file")
    with pytest.raises(OSError), atomic_output(target, kind="numbered images") as tmp:
        tmp.mkdir()
        for i in range(4):
            (tmp / f"result_{i:03d}.tif").write_bytes(b"x")
    assert target.read_text() == "a file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result"]


def test_issue13_item10_interrupt_after_an_output_says_what_was_written(
    mk, stack, run, monkeypatch
):
    """A command stopped after some outputs were renamed into place names them."""
    import dedkit.jobs.stacks as stacks

    real = stacks._report

    def stop_after_writing(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(stacks, "_report", stop_after_writing)
    out = mk.folder / "out.mrc"
    r = run("convert", stack, out)
    assert r.status == 130, r
    assert "no output was written" not in r.err
    assert f"written before that: {out}" in r.err
    # and before anything was written, it says so
    monkeypatch.setattr(stacks, "_map_frames", lambda *a, **k: (_ for _ in ()).throw(
        KeyboardInterrupt))  # fmt: skip
    r = run("convert", stack, mk.folder / "other.mrc")
    assert r.status == 130 and "no output was written" in r.err, r


# ----------------------------------------------------------------------------- item 2

#: (command line with {name} for files, the input the output is made equal to). Every
#: file is a placeholder: the output check comes before anything is read.
OUTPUT_IS_AN_INPUT = [
    ("norm {in.mrc} {gain.mrc} {OUT}", "in.mrc"),
    ("norm {in.mrc} {gain.mrc} {OUT}", "gain.mrc"),
    ("norm {in.mrc} {gain.mrc} {OUT} -D {defects.mrc}", "defects.mrc"),
    ("defectmap {defects.mrc} {like.mrc} {OUT}", "defects.mrc"),
    ("defectmap {defects.mrc} {like.mrc} {OUT}", "like.mrc"),
    ("rotflip {in.mrc} {OUT} --op 1", "in.mrc"),
    ("pack {in.mrc} {OUT} --as mode101", "in.mrc"),
    ("unpack {in.mrc} {OUT}", "in.mrc"),
    ("convert {in.mrc} {OUT}", "in.mrc"),
    ("reduce {in.mrc} {OUT} --factor 2", "in.mrc"),
    ("hpd pedestal {master.h5} -o {OUT}", "master.h5"),
    ("hpd clusters {master.h5} -p {ped.h5} -o {OUT}", "master.h5"),
    ("hpd clusters {master.h5} -p {ped.h5} -o {OUT}", "ped.h5"),
    ("hpd clusters {master.h5} -p {ped.h5} --gain {gain.h5} -o {OUT}", "gain.h5"),
    ("hpd localize {clusters.h5} -o {OUT}", "clusters.h5"),
    ("hpd localize {clusters.h5} --flat-field {flat.h5} -o {OUT}", "flat.h5"),
    ("hpd image {events.mrc} -o {OUT}", "events.mrc"),
    ("learn evaluate {ds.h5} --model {m1.json} --figure {OUT}", "m1.json"),
    ("learn evaluate {ds.h5} --model {m1.json} --figure {OUT}", "m1.npz"),
    ("learn evaluate {ds.h5} --model {m1.json} --figure {OUT}", "ds.h5"),
    ("learn evaluate {ds.h5} --eta-reference {ref.png} --figure {OUT}", "ref.png"),
    ("learn train {m.npz} -o {OUT}", "m.npz"),
    ("learn scan-labels {cl.h5} --scan {scan.csv} -o {OUT}", "cl.h5"),
    ("learn scan-labels {cl.h5} --scan {scan.csv} -o {OUT}", "scan.csv"),
]


@pytest.mark.parametrize(("template", "clobbered"), OUTPUT_IS_AN_INPUT)
def test_issue13_item2_no_command_writes_over_any_input(tmp_path, run, template, clobbered):
    """Each command refuses, even with --force, an output that is one of its inputs."""
    import re

    names = [n for n in re.findall(r"\{([^}]+)\}", template) if n != "OUT"]
    files = {}
    for name in {*names, clobbered}:  # m1.npz: the weights beside the card m1.json
        files[name] = tmp_path / name
        files[name].write_bytes(f"precious {name}".encode())
    out = files[clobbered]
    if template.startswith("learn train"):
        out = tmp_path / "m"  # the model m = m.npz + m.json: m.npz is the training set
    args = template
    for name, path in {**files, "OUT": out}.items():
        args = args.replace("{" + name + "}", str(path))
    r = run(*args.split(), "--force")
    # refused by the output rules, before any input is read
    _refused(r, "image suffix" if "figure" in template and clobbered != "ref.png" else "same file")
    for name, path in files.items():
        assert path.read_bytes() == f"precious {name}".encode(), name
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_issue13_item2_outputs_differ_from_each_other(tmp_path):
    from dedkit.errors import DedkitError
    from dedkit.io.atomic import FolderOutput, check_outputs

    with pytest.raises(DedkitError, match="same file"):
        check_outputs([tmp_path / "a.h5", tmp_path / "sub" / ".." / "a.h5"])
    with pytest.raises(DedkitError, match="inside another"):
        check_outputs([FolderOutput(tmp_path / "run", "simulated run"), tmp_path / "run" / "x"])


@pytest.mark.parametrize("name", ["fig.npz", "fig.h5", "fig", "fig.mrc"])
def test_issue13_item2_figures_need_an_image_suffix(tmp_path, run, name):
    r = run("study", "coincidence", "--figure", tmp_path / name)
    _refused(r, ".png, .pdf, .svg")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- item 10

_SLOW_NORM = """
import sys, time
import dedkit.io.mrc as mrc
from dedkit.cli.main import main

write = mrc.MrcWriter._write

def slow_write(self, frame):  # a long job: one frame every 0.2 s
    time.sleep(0.2)
    write(self, frame)

mrc.MrcWriter._write = slow_write
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize(("signame", "status"), [("SIGTERM", 143), ("SIGHUP", 129)])
def test_issue13_item10_sigterm_and_sighup_are_handled_as_ctrl_c(mk, signame, status):
    """The job stops at once with a message and exit 128 + N; its .part file is gone."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    import dedkit

    frames = mk.mrc("in.mrc", mk.counts(nz=100))
    out = mk.folder / "out.mrc"
    env = {**os.environ, "PYTHONPATH": str(Path(dedkit.__file__).parents[1])}
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_NORM, "norm", str(frames), "none", str(out), "-q"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not list(mk.folder.glob(".out.mrc.part-*")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the job never started writing"
            time.sleep(0.05)
        proc.send_signal(getattr(signal, signame))
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == status, stderr
    assert f"stopped by {signame}; no output was written" in stderr
    assert "Traceback" not in stderr
    assert not out.exists()
    assert not [p for p in mk.folder.iterdir() if ".part-" in p.name]


def test_issue13_item10_learn_train_stopped_after_its_model_names_it(tmp_path, run, monkeypatch):
    """Ctrl-C right after learn train wrote its model and card: the message lists them."""
    pytest.importorskip("torch")
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "learn"))
    from tiny_set import make_tiny_set

    import dedkit.jobs.learn as train

    dataset = make_tiny_set(tmp_path / "tiny.h5", n=120)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "write_loss_curves", interrupted)
    model = tmp_path / "m"
    r = run("learn", "train", dataset, "-o", model, "--arch", "c16", "--epochs", 1,
            "--optimizer", "adam", "--threads", 1, "-q")  # fmt: skip
    assert r.status == 130, r
    assert "no output was written" not in r.err
    assert f"written before that: {model}.npz, {model}.json; nothing else was written" in r.err


def test_issue13_item1_no_output_inside_an_input_folder(mk, run, snap):
    """A folder of numbered images read as input gets no new file written into it."""
    folder = mk.folder_of_tiffs("imgs", mk.counts())
    before = snap(mk.folder)
    for out in (folder / "out.mrc", folder / "sub"):
        _refused(run("convert", folder, out, "--force"), "inside the input folder")
        assert snap(mk.folder) == before


def test_issue13_item1_working_folders_are_removed_only_when_they_hold_only_dedkits(tmp_path):
    """--force discards a checkpoint or an unfinished training set's parts, but never a
    folder of that name holding anything else."""
    from dedkit.errors import DedkitError
    from dedkit.io.atomic import remove_owned_folder
    from dedkit.io.checkpoints import CHECKPOINT_ENTRIES
    from dedkit.io.training import TrainingParts, parts_folder

    parts = parts_folder(tmp_path / "train.h5")
    TrainingParts(parts, {"seed": 1})
    (parts / "chunk_000003.h5").write_bytes(b"part")
    TrainingParts(parts, {"seed": 2}, restart=True)  # only dedkit's files: removed
    assert not (parts / "chunk_000003.h5").exists()
    (parts / "thesis.tex").write_text("mine")
    with pytest.raises(DedkitError, match="did not write"):
        TrainingParts(parts, {"seed": 3}, restart=True)
    assert (parts / "thesis.tex").read_text() == "mine"

    checkpoint = tmp_path / ".m.ckpt"
    checkpoint.mkdir()
    (checkpoint / "state.json").write_text("{}")
    (checkpoint / "notes.txt").write_text("mine")
    with pytest.raises(DedkitError, match="did not write"):
        remove_owned_folder(checkpoint, CHECKPOINT_ENTRIES)
    (checkpoint / "notes.txt").unlink()
    remove_owned_folder(checkpoint, CHECKPOINT_ENTRIES)
    assert not checkpoint.exists()


# ------------------------------------------------------------------- item 4, every command


def test_issue13_item4_no_command_writes_inside_the_installed_package(mk, stack, run):
    """The package is read-only to dedkit, whatever the command (one rule in check_outputs,
    not only learn's --record): nothing is written there, even with --force."""
    from dedkit.io.atomic import PACKAGE_DIR

    target = PACKAGE_DIR / "issue13-item4-probe.mrc"
    assert not target.exists()
    r = run("convert", stack, target, "--force")
    _refused(r, "installed dedkit package")
    assert not target.exists()
    assert not list(PACKAGE_DIR.glob(".issue13-item4-probe*"))

"""Training: a small run end to end, its card and curves, and resuming after an
interruption gives the same network as an uninterrupted run."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

pytest.importorskip("torch")

from dedkit.errors import DedkitError  # noqa: E402
from dedkit.io.checkpoints import checkpoint_folder  # noqa: E402
from dedkit.jobs.learn import train_model  # noqa: E402
from dedkit.learn.data import file_sha256  # noqa: E402
from dedkit.learn.store import load_model  # noqa: E402
from dedkit.learn.train import TrainConfig  # noqa: E402


def test_small_run_writes_model_card_and_loss_curves(tiny_set, tiny_model):
    state, card = load_model(tiny_model)
    assert card["architecture"]["name"] == "c16"
    assert card["energy_keV"] == 200.0
    assert card["sensor"] == {"thickness_um": 320.0, "pitch_um": 25.0}
    assert card["training"]["dataset_sha256"] == file_sha256(tiny_set)
    assert card["training"]["n_train"] == 210 and card["training"]["n_test"] == 90
    assert card["command"] == "pytest tiny_model"
    assert len(card["input"]["feature_mean"]) == 7
    history = card["training"]["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    assert all(np.isfinite(h["train_loss"]) and h["test_loss"] > 0 for h in history)
    rmse = card["metrics"]["split_test"]["rmse_px"]
    assert 0 < rmse["x"] < 20 and 0 < rmse["y"] < 20
    with open(tiny_model.with_name("tiny.loss.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert tiny_model.with_name("tiny.loss.png").stat().st_size > 1000
    assert not checkpoint_folder(tiny_model).exists()
    assert all(v.dtype == np.float32 for v in state.values())


class _Stop(Exception):
    pass


def test_resume_after_an_interruption_gives_the_same_model(tiny_set, tmp_path):
    config = TrainConfig(arch="c16", epochs=2, optimizer="adam", threads=1, eval_samples=30,
                         limit=120, batch_size=32)  # fmt: skip
    train_model(tiny_set, tmp_path / "whole", config)
    whole, _ = load_model(tmp_path / "whole.npz")

    def stop_in_epoch_two(done, total, epoch, loss):
        if epoch == 2:
            raise _Stop

    with pytest.raises(_Stop):
        train_model(tiny_set, tmp_path / "cut", config, progress=stop_in_epoch_two)
    folder = checkpoint_folder(tmp_path / "cut")
    assert json.loads((folder / "state.json").read_text())["epoch"] == 1
    assert not (tmp_path / "cut.npz").exists()
    with pytest.raises(DedkitError, match="--resume"):
        train_model(tiny_set, tmp_path / "cut", config)
    changed = TrainConfig(**{**config.to_dict(), "lr": 0.01})
    with pytest.raises(DedkitError, match="lr"):
        train_model(tiny_set, tmp_path / "cut", changed, resume=True)
    report = train_model(tiny_set, tmp_path / "cut", config, resume=True)
    assert report.details["resumed_from_epoch"] == 1
    resumed, card = load_model(tmp_path / "cut.json")
    for name in whole:
        np.testing.assert_array_equal(resumed[name], whole[name])
    assert [h["epoch"] for h in card["training"]["history"]] == [1, 2]


class _MemoryCheckpoints:
    """Checkpoints kept in memory (the Checkpoints protocol of dedkit.learn.train)."""

    def __init__(self, path):
        self.path = path
        self.saved = []

    def write(self, state, arrays):
        self.saved.append((json.loads(json.dumps(state)), dict(arrays)))

    def read_state(self):
        return self.saved[-1][0]

    def read_arrays(self, shapes=None):
        return self.saved[-1][1]


def test_issue_14_fit_model_writes_no_files(tiny_set, tmp_path):
    """The training loop hands its checkpoints to the object it is given and returns the
    model: the files are the job's (dedkit.jobs.learn.train_model)."""
    from dedkit.learn.train import fit_model

    config = TrainConfig(arch="c16", epochs=2, threads=1, eval_samples=20, limit=60)
    before = sorted(tiny_set.parent.iterdir())
    checkpoints = _MemoryCheckpoints(tmp_path / "nowhere")
    trained = fit_model(tiny_set, config, checkpoints, command="pytest")
    assert list(tmp_path.iterdir()) == [] and sorted(tiny_set.parent.iterdir()) == before
    assert [state["epoch"] for state, _ in checkpoints.saved] == [1, 2]
    assert [h["epoch"] for h in trained.history] == [1, 2]
    assert trained.card["command"] == "pytest" and trained.resumed_from_epoch == 0
    assert all(v.dtype == np.float32 for v in trained.state.values())
    # resuming from the in-memory checkpoint of the last epoch trains nothing more
    resumed = fit_model(tiny_set, config, checkpoints, resume=True)
    assert resumed.resumed_from_epoch == 2
    for name, value in trained.state.items():
        np.testing.assert_array_equal(resumed.state[name], value)


def test_bad_settings_are_refused(tiny_set, tmp_path):
    for bad in ({"arch": "huge"}, {"optimizer": "lbfgs"}, {"label_noise_unit": "mm"},
                {"epochs": 0}, {"lr": 0.0}):  # fmt: skip
        with pytest.raises(DedkitError):
            train_model(tiny_set, tmp_path / "m", TrainConfig(**bad))
    with pytest.raises(DedkitError, match="nothing to resume"):
        train_model(tiny_set, tmp_path / "m", TrainConfig(epochs=1), resume=True)
    assert list(tmp_path.iterdir()) == []


def _interrupted_run(tiny_set, output, **settings):
    """Train ``output`` and stop it in its second epoch: leaves a one-epoch checkpoint."""
    base = {"arch": "c16", "epochs": 2, "optimizer": "adam", "threads": 1, "eval_samples": 20}
    config = TrainConfig(**{**base, "limit": 60, "batch_size": 32, **settings})

    def stop_in_epoch_two(done, total, epoch, loss):
        if epoch == 2:
            raise _Stop

    with pytest.raises(_Stop):
        train_model(tiny_set, output, config, progress=stop_in_epoch_two)
    return config, checkpoint_folder(output)


def test_issue_13_item_11_a_foreign_checkpoint_is_refused(tiny_set, tmp_path):
    import shutil

    from dedkit.io.checkpoints import read_checkpoint

    config, own = _interrupted_run(tiny_set, tmp_path / "own")
    _, c8 = _interrupted_run(tiny_set, tmp_path / "c8", arch="c8")
    target = checkpoint_folder(tmp_path / "m")

    def resume_with(folder, match, data=tiny_set):
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(folder, target)
        with pytest.raises(DedkitError, match=match) as error:
            train_model(data, tmp_path / "m", config, resume=True)
        assert "\n" not in str(error.value)
        assert not (tmp_path / "m.npz").exists()

    # another architecture, as recorded ...
    resume_with(c8, r"other settings \(arch\)")
    # ... and with its settings edited to look like ours
    state = json.loads((c8 / "state.json").read_text())
    state["config"]["arch"] = "c16"
    (c8 / "state.json").write_text(json.dumps(state))
    resume_with(c8, r"checkpoint tensor model/backbone.0.weight is \(8, 1, 3, 3\), the arch")
    # another training set
    other = tmp_path / "other.h5"
    shutil.copy(tiny_set, other)
    with open(other, "ab") as f:
        f.write(b"\0")  # same clusters, another file
    resume_with(own, r"other settings \(training data\)", data=other)
    # not a checkpoint at all
    for state_text, npz in (("[1, 2]", True), ("{", True), ('{"epoch": 1}', True), ("", False)):
        broken = tmp_path / "broken"
        shutil.rmtree(broken, ignore_errors=True)
        shutil.copytree(own, broken)
        (broken / "state.json").write_text(state_text)
        if not npz:
            (broken / "checkpoint.npz").write_bytes(b"junk")
        resume_with(broken, "not a checkpoint of 'dedkit learn train'")
    with pytest.raises(DedkitError, match="not a checkpoint"):
        read_checkpoint(tmp_path / "nowhere")
    # the checkpoint of our own run still resumes
    report = train_model(tiny_set, tmp_path / "own", config, resume=True)
    assert report.details["resumed_from_epoch"] == 1


def test_issue_13_item_18_the_default_recipe_learns_on_a_cpu(tmp_path):
    """The defaults (the shipped recipe: c16, Adam, cosine, 12 epochs) beat the charge
    centroid within seconds on one CPU thread; the old defaults (the paper's network with
    SGD at lr 0.001) stayed at the centroid (ratio 1.02 on this set)."""
    from tiny_set import make_tiny_set, slowing_simulate

    from dedkit.learn.recipes import RECIPES

    data = make_tiny_set(tmp_path / "slowing.h5", n=1500, simulate=slowing_simulate)
    config = TrainConfig(threads=1)
    assert {k: v for k, v in config.to_dict().items() if k in RECIPES["shipped"]} == RECIPES[
        "shipped"
    ]
    report = train_model(data, tmp_path / "m", config)
    cnn = report.details["metrics"]["split_test"]["rmse_px"]
    centroid = report.details["metrics"]["split_test_centroid"]["rmse_px"]
    assert cnn["x"] < centroid["x"] and cnn["y"] < centroid["y"]
    both = np.hypot(cnn["x"], cnn["y"]) / np.hypot(centroid["x"], centroid["y"])
    assert both < 0.9
    card = json.loads((tmp_path / "m.json").read_text())
    assert card["training"]["config"]["recipe"] == "shipped"


def test_issue_13_item_18_recipe_paper_selects_the_papers_settings():
    paper = TrainConfig.from_recipe("paper")
    # Xie et al. 2023, section 3.2: SGD, lr 0.001, momentum 0.9, weight decay 0.0001,
    # batch 128, 100 epochs, the 7 x 64 network, label noise 1.0, pixel noise 0.18 keV
    assert (paper.arch, paper.optimizer, paper.lr, paper.momentum, paper.weight_decay) == (
        "paper", "sgd", 1e-3, 0.9, 1e-4,
    )  # fmt: skip
    assert (paper.batch_size, paper.epochs, paper.schedule) == (128, 100, "constant")
    assert (paper.label_noise, paper.pixel_noise_keV, paper.recipe) == (1.0, 0.18, "paper")
    # a setting given replaces the recipe's, None leaves it
    changed = TrainConfig.from_recipe("paper", epochs=3, lr=None, threads=1)
    assert (changed.epochs, changed.lr, changed.optimizer, changed.threads) == (3, 1e-3, "sgd", 1)
    shipped = TrainConfig.from_recipe()
    assert shipped == TrainConfig() and (shipped.arch, shipped.optimizer) == ("c16", "adam")
    with pytest.raises(DedkitError, match="unknown training recipe 'fast'"):
        TrainConfig.from_recipe("fast")
    with pytest.raises(DedkitError, match="unknown training recipe"):
        TrainConfig(recipe="fast").check()


def test_issue_13_item_4_nan_in_the_set_or_the_checkpoint_is_named(tiny_set, tmp_path):
    import shutil

    import h5py

    nan_set = tmp_path / "nan.h5"
    shutil.copy(tiny_set, nan_set)
    with h5py.File(nan_set, "a") as f:
        f["training/image"][5, 7, 7] = np.nan
        f["training/entry_x"][0] = np.inf
    config = TrainConfig(arch="c16", epochs=1, threads=1, eval_samples=20, limit=60)
    # not "training diverged ... lower the learning rate"
    with pytest.raises(DedkitError, match=r"column image holds 1 NaN or infinite value \(") as e:
        train_model(nan_set, tmp_path / "m", config)
    assert str(e.value).startswith(f"{nan_set}: damaged training set")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nan.h5"]
    # a checkpoint whose weights went NaN
    config, folder = _interrupted_run(tiny_set, tmp_path / "own")
    with np.load(folder / "checkpoint.npz") as npz:
        arrays = dict(npz)
    arrays["model/head.bias"] = np.array([np.nan, 0.0], np.float32)
    with open(folder / "checkpoint.npz", "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(DedkitError, match="damaged checkpoint: model/head.bias holds 1 NaN") as e:
        train_model(tiny_set, tmp_path / "own", config, resume=True)
    assert str(e.value).startswith(f"{folder}: ")
    assert not (tmp_path / "own.npz").exists()


@pytest.mark.parametrize(
    "where, key, value, problem",
    [
        ("state", "history", [1, "x", None], "history is not a list of 1 epochs"),
        ("state", "history", [1], "history entry 1 is not an object of epoch, train_loss"),
        ("state", "history", "x", "history is not a list"),
        ("state", "history", ..., "history is not a list"),
        ("state", "history", [{"epoch": 1}], "history entry 1 is not an object"),
        ("entry", "train_loss", "x", "history entry 1 train_loss 'x' is not a finite"),
        ("entry", "lr", float("nan"), "history entry 1 lr nan is not a finite"),
        ("entry", "epoch", 2, "history entry 1 is of epoch 2"),
        ("entry", "seconds", ..., "history entry 1 is not an object"),
        ("state", "epoch", True, "epoch True is not a count"),
        ("state", "epoch", -1, "epoch -1 is not a count"),
        ("state", "param_groups", [1], "param_groups is not a list"),
        ("state", "param_groups", [{"params": ["a"]}], "param_groups is not a list"),
        ("state", "dataset_sha256", 5, "no dataset_sha256"),
        ("state", "config", [], "no config object"),
    ],
)
def test_issue_13_item_2_every_field_of_the_checkpoint_state_is_checked(
    tiny_set, tmp_path, where, key, value, problem
):
    """A damaged state.json is refused before training, and nothing is written (it
    crashed in write_loss_curves after the model was written)."""
    config, folder = _interrupted_run(tiny_set, tmp_path / "F8")
    state = json.loads((folder / "state.json").read_text())
    target = state if where == "state" else state["history"][0]
    if value is ...:
        del target[key]
    else:
        target[key] = value
    (folder / "state.json").write_text(json.dumps(state))
    with pytest.raises(DedkitError, match="not a checkpoint of 'dedkit learn train'") as e:
        train_model(tiny_set, tmp_path / "F8", config, resume=True)
    assert problem in str(e.value) and str(e.value).startswith(f"{folder}: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".F8.ckpt"]


def test_issue_13_item_5_a_full_disk_at_a_checkpoint_names_the_file(tiny_set, tmp_path):
    """ENOSPC while writing the first checkpoint: one line naming it, no temporary and
    no checkpoint folder left; at the second: the first checkpoint is kept whole and
    resumes."""
    import errno
    import os
    from unittest import mock

    import dedkit.io.checkpoints as checkpoints

    config = TrainConfig(arch="c16", epochs=2, threads=1, eval_samples=20, limit=60)
    real = np.savez
    calls = []

    def full_at(n):
        def savez(file, **arrays):
            calls.append(1)
            if len(calls) == n:
                file.write(b"partial")
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real(file, **arrays)

        return savez

    folder = checkpoint_folder(tmp_path / "m")
    with mock.patch.object(checkpoints.np, "savez", full_at(1)):
        with pytest.raises(DedkitError) as error:
            train_model(tiny_set, tmp_path / "m", config)
    assert str(error.value) == (
        f"{folder / 'checkpoint.npz'}: cannot write: No space left on device"
    )
    assert list(tmp_path.iterdir()) == []
    calls.clear()
    with mock.patch.object(checkpoints.np, "savez", full_at(2)):
        with pytest.raises(DedkitError, match="checkpoint.npz: cannot write: No space left"):
            train_model(tiny_set, tmp_path / "m", config)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".m.ckpt"]
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint.npz", "state.json"]
    assert json.loads((folder / "state.json").read_text())["epoch"] == 1
    report = train_model(tiny_set, tmp_path / "m", config, resume=True)
    assert report.details["resumed_from_epoch"] == 1
    assert not folder.exists()


def test_issue_13_item_5_a_real_full_disk_leaves_nothing(tiny_set, tmp_path):
    """A 64 kB tmpfs: the first checkpoint (about 180 kB) does not fit."""
    import subprocess

    disk = tmp_path / "disk"
    disk.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)],
                       capture_output=True)  # fmt: skip
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        config = TrainConfig(arch="c16", epochs=1, threads=1, eval_samples=20, limit=60)
        with pytest.raises(DedkitError, match="cannot write: No space left on device") as e:
            train_model(tiny_set, disk / "m", config)
        assert str(e.value).startswith(f"{disk}/.m.ckpt/checkpoint.npz: ")
        assert list(disk.iterdir()) == []
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)

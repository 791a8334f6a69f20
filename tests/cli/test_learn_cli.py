"""``dedkit learn train / evaluate`` and ``dedkit hpd localize --method cnn`` (torch only;
a tiny training set made without Geant4, a few seconds on one CPU)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "learn"))

from tiny_set import huge_member_npz, make_tiny_set  # noqa: E402

from dedkit.io.events import TableWriter, read_table  # noqa: E402
from dedkit.io.training import read_training_set  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(training set, model) from the CLI itself."""
    from dedkit.cli.main import main

    folder = tmp_path_factory.mktemp("learn_cli")
    data = make_tiny_set(folder / "set.h5", n=200, seed=5)
    status = main(["learn", "train", str(data), "-o", str(folder / "m"), "--arch", "c16",
                   "--epochs", "2", "--optimizer", "adam", "--threads", "1", "-q"])  # fmt: skip
    assert status == 0
    return data, folder / "m.json"


def test_train_and_evaluate(run, trained, tmp_path):
    data, model = trained
    card = model.with_suffix(".json").read_text()
    assert '"arch": "c16"' in card and "learn train" in card
    r = run("learn", "evaluate", data, "--model", model, "--json", "--figure", tmp_path / "f.png")
    assert r.status == 0, r
    d = r.json
    assert d["n_clusters"] == 200
    for key in ("rmse_px", "mean_residual_px"):
        assert set(d[key]) == {"cnn", "eta", "centroid"}
        assert set(d[key]["cnn"]) == {"x", "y"}
    assert d["backscattered"]["n"] + d["fully_absorbed"]["n"] == 200
    assert (tmp_path / "f.png").exists() and d["figure"] == str(tmp_path / "f.png")
    r = run("learn", "evaluate", data, "--model", model, "--limit", "50")
    assert r.status == 0 and "50 clusters" in r.out and "CNN / centroid" in r.out
    # the figure is not overwritten without --force
    r = run("learn", "evaluate", data, "--model", model, "--figure", tmp_path / "f.png")
    assert r.status == 2 and len(r.err_lines) == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "{missing}", "-o", "{tmp}/m"], "not found"),
        (["train", "{data}", "-o", "{tmp}/m", "--arch", "huge"], "unknown architecture"),
        (["train", "{data}", "-o", "{tmp}/m", "--resume"], "nothing to resume"),
        (["train", "{data}", "-o", "{model}"], "exists"),
        (["evaluate", "{data}", "--model", "{tmp}/none.json"], "not found"),
        (["evaluate", "{missing}", "--model", "{model}"], "not found"),
    ],
)
def test_bad_input_is_one_line_and_status_2(run, trained, tmp_path, args, message):
    data, model = trained
    values = {"missing": tmp_path / "no.h5", "tmp": tmp_path, "data": data,
              "model": model.with_suffix(".npz")}  # fmt: skip
    r = run("learn", *[a.format(**values) for a in args])
    assert r.status == 2, r
    assert len(r.err_lines) == 1 and message in r.err
    assert not (tmp_path / "m.npz").exists()


def _clusters_file(path, data, beam_energy_keV):
    columns = read_training_set(data)
    from dedkit.records.tables import ClusterTable

    n = len(columns["image"])
    table = ClusterTable(
        np.zeros(n, np.int64), np.full(n, 40, np.int32), np.full(n, 60, np.int32),
        columns["image"], units="keV", features=columns["features"],
    )  # fmt: skip
    with TableWriter(path, "clusters", attrs={"beam_energy_keV": beam_energy_keV,
                                              "finder": "connected"}) as writer:  # fmt: skip
        writer.append(table)
    return path


def test_hpd_localize_with_the_cnn(run, trained, tmp_path):
    data, model = trained
    clusters = _clusters_file(tmp_path / "c.h5", data, 200.0)
    r = run("hpd", "localize", clusters, "--method", "cnn", "--model", model,
            "-o", tmp_path / "e.h5", "--json")  # fmt: skip
    assert r.status == 0, r
    events = read_table(tmp_path / "e.h5")
    assert events.method == "cnn" and len(events) == r.json["counts"]["selected"] > 0
    assert np.all(np.abs(events.x - 40.5) < 7.5) and np.all(np.abs(events.y - 60.5) < 7.5)


def test_hpd_localize_refuses_another_energy(run, trained, tmp_path):
    data, model = trained
    clusters = _clusters_file(tmp_path / "c300.h5", data, 300.0)
    r = run(
        "hpd", "localize", clusters, "--method", "cnn", "--model", model, "-o", tmp_path / "e.h5"
    )
    assert r.status == 2, r
    assert r.err_lines == [
        "dedkit: error: the CNN model was trained for 200 keV, the data are 300 keV; train a "
        "model for this energy (dedkit learn train) and give it with --model"
    ]
    assert not (tmp_path / "e.h5").exists()
    # the energy given on the command line is what is checked
    r = run("hpd", "localize", clusters, "--method", "cnn", "--model", model,
            "--beam-energy", "250", "-o", tmp_path / "e.h5")  # fmt: skip
    assert r.status == 2 and "250 keV" in r.err


def test_issue_13_item_4_record_without_model_is_refused(run, trained, tmp_path):
    from dedkit.learn.store import default_model_path

    data, _ = trained
    shipped = default_model_path()
    before = shipped.read_bytes()
    r = run("learn", "evaluate", data, "--record", "--limit", "20")
    assert r.status == 2, r
    assert len(r.err_lines) == 1 and "--model" in r.err and "copy it first" in r.err
    r = run("learn", "evaluate", data, "--record", "--limit", "20", "--model", shipped)
    assert r.status == 2 and "inside the installed dedkit package" in r.err, r
    r = run("learn", "train", data, "-o", shipped.with_name("mine"), "--epochs", "1")
    assert r.status == 2 and "inside the installed dedkit package" in r.err, r
    assert shipped.read_bytes() == before
    assert not shipped.with_name("mine.npz").exists()
    assert not shipped.with_name(".mine.ckpt").exists()


def _model_copy(model, folder):
    import shutil

    for suffix in (".npz", ".json"):
        shutil.copy(model.with_suffix(suffix), folder / f"copy{suffix}")
    return folder / "copy.json"


def test_issue_13_item_3_a_card_without_hash_does_not_run(run, trained, tmp_path):
    import json

    data, model = trained
    copy = _model_copy(model, tmp_path)
    weights = copy.with_suffix(".npz")
    state = {k: np.full_like(v, np.nan) for k, v in np.load(weights).items()}
    with weights.open("wb") as f:
        np.savez(f, **state)
    card = json.loads(copy.read_text())
    del card["weights_sha256"]
    copy.write_text(json.dumps(card))
    _both_refuse(run, data, copy, tmp_path, "no weights_sha256")


@pytest.mark.parametrize(
    "damage, message",
    [
        ({"format_version": "two"}, "format_version 'two' is not a version number"),
        ({"input": "nonsense"}, "input must be an object"),
        ("npz", "unreadable model weights"),
        # issue 13 item 1: a member declaring 64 GiB, the hash made to match
        ("huge", "model tensor backbone.0.weight: its .npy header declares 131072 x 131072"),
    ],
)
def test_issue_13_item_11_damaged_models_are_one_line_and_status_2(
    run, trained, tmp_path, damage, message
):
    import hashlib
    import json

    data, model = trained
    copy = _model_copy(model, tmp_path)
    card = json.loads(copy.read_text())
    if damage == "npz":
        raw = copy.with_suffix(".npz").read_bytes()
        raw = raw[:40] + bytes(60) + raw[100:]
        copy.with_suffix(".npz").write_bytes(raw)
        card["weights_sha256"] = hashlib.sha256(raw).hexdigest()  # the hash is no help here
    elif damage == "huge":
        raw = huge_member_npz(copy.with_suffix(".npz"))
        copy.with_suffix(".npz").write_bytes(raw)
        card["weights_sha256"] = hashlib.sha256(raw).hexdigest()
    else:
        card.update(damage)
    copy.write_text(json.dumps(card))
    _both_refuse(run, data, copy, tmp_path, message)


def _both_refuse(run, data, model, tmp_path, message):
    """learn evaluate and hpd localize --method cnn refuse ``model``: one line naming the
    problem, exit 2, no events written."""
    clusters = _clusters_file(tmp_path / "c.h5", data, 200.0)
    for args in (
        ("learn", "evaluate", data, "--model", model, "--limit", "20"),
        ("hpd", "localize", clusters, "--method", "cnn", "--model", model, "-o", tmp_path / "e.h5"),
    ):
        r = run(*args)
        assert r.status == 2, r
        assert len(r.err_lines) == 1 and message in r.err
    assert not (tmp_path / "e.h5").exists()


def test_issue_13_item_11_bad_training_sets_and_checkpoints_are_status_2(run, trained, tmp_path):
    import shutil

    import h5py

    data, model = trained
    short, seven = tmp_path / "short.h5", tmp_path / "seven.h5"
    for path, column, cut in (
        (short, "entry_y", lambda d: d[:-1]),
        (seven, "image", lambda d: d[:, 4:11, 4:11]),
    ):
        shutil.copy(data, path)
        with h5py.File(path, "a") as f:
            values = cut(f["training"][column][()])
            del f["training"][column]
            f["training"].create_dataset(column, data=values)
    for bad, message in ((short, "column entry_y has 199 rows"), (seven, "crops are 7 x 7")):
        for args in (("train", bad, "-o", tmp_path / "m"), ("evaluate", bad, "--model", model)):
            r = run("learn", *args)
            assert r.status == 2, r
            assert len(r.err_lines) == 1 and message in r.err
    # --resume with something that is not a checkpoint of dedkit learn train
    folder = tmp_path / ".m.ckpt"
    folder.mkdir()
    (folder / "state.json").write_text('{"epoch": "one"}')
    r = run("learn", "train", data, "-o", tmp_path / "m", "--resume")
    assert r.status == 2 and len(r.err_lines) == 1 and "not a checkpoint" in r.err, r
    assert sorted(p.name for p in tmp_path.iterdir()) == [".m.ckpt", "seven.h5", "short.h5"]


def _damaged_set(data, path, column, values):
    """A copy of the training set ``data`` with ``column`` replaced by ``values(old)``."""
    import shutil

    import h5py

    shutil.copy(data, path)
    with h5py.File(path, "a") as f:
        new = values(f["training"][column][()])
        del f["training"][column]
        f["training"].create_dataset(column, data=new)
    return path


def test_issue_13_item_3_a_bytes_column_is_one_line_naming_file_and_column(run, trained, tmp_path):
    data, model = trained
    bad = _damaged_set(data, tmp_path / "bytes.h5", "entry_y", lambda v: np.array([b"x"] * len(v)))
    for args in (("train", bad, "-o", tmp_path / "m"), ("evaluate", bad, "--model", model)):
        r = run("learn", *args)
        assert r.status == 2, r
        assert len(r.err_lines) == 1 and f"{bad}: damaged training set: column entry_y" in r.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bytes.h5"]


def test_issue_13_item_4_nan_or_inf_in_a_training_set_names_file_and_column(run, trained, tmp_path):
    data, model = trained

    def inf_first(values):
        values[0] = np.inf
        return values

    bad = _damaged_set(data, tmp_path / "inf.h5", "entry_x", inf_first)
    for args in (("train", bad, "-o", tmp_path / "m"), ("evaluate", bad, "--model", model)):
        r = run("learn", *args)
        assert r.status == 2, r
        assert len(r.err_lines) == 1
        assert f"{bad}: damaged training set: column entry_x holds 1 NaN or infinite" in r.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inf.h5"]


def test_issue_13_item_20_learn_help_lists_every_command_in_one_line(run):
    from dedkit.cli.learn import learn

    r = run("learn", "--help")
    assert r.status == 0, r
    listing = r.out.split("Commands:")[1].strip().splitlines()
    assert sorted(line.split()[0] for line in listing) == sorted(learn.commands)
    for line in listing:
        assert not line.endswith("...") and len(line.split(None, 1)[1]) > 20, line
    for name in learn.commands:
        assert f"({name})" in r.out.split("Options:")[0]  # named in the group's text
    r = run("--help")
    (summary,) = [line for line in r.out.splitlines() if line.strip().startswith("learn ")]
    assert not summary.endswith("...")


def test_issue_13_item_18_recipes_from_the_command_line(run, trained, tmp_path):
    import json

    from dedkit.cli.learn import RECIPE_NAMES
    from dedkit.learn.recipes import DEFAULT_RECIPE, RECIPES

    assert RECIPE_NAMES == tuple(RECIPES) and RECIPE_NAMES[0] == DEFAULT_RECIPE
    data, _ = trained
    r = run("learn", "train", data, "-o", tmp_path / "p", "--recipe", "paper", "--epochs", "1",
            "--limit", "60", "--threads", "1", "-q")  # fmt: skip
    assert r.status == 0, r
    config = json.loads((tmp_path / "p.json").read_text())["training"]["config"]
    assert {k: config[k] for k in RECIPES["paper"]} == {**RECIPES["paper"], "epochs": 1}
    assert config["recipe"] == "paper"
    r = run("learn", "train", data, "-o", tmp_path / "d", "--epochs", "1", "--limit", "60",
            "--threads", "1", "-q")  # fmt: skip
    assert r.status == 0, r
    config = json.loads((tmp_path / "d.json").read_text())["training"]["config"]
    assert {k: config[k] for k in RECIPES["shipped"]} == {**RECIPES["shipped"], "epochs": 1}
    # the help shows each setting's default and the paper's value where it differs
    r = run("learn", "train", "--help")
    text = " ".join(r.out.split())
    for expected in (
        "--recipe [shipped|paper]",
        "[default: shipped]",
        "[default: c16; --recipe paper: paper]",
        "[default: 12; --recipe paper: 100]",
        "[default: adam; --recipe paper: sgd]",
        "[default: cosine; --recipe paper: constant]",
        "[default: um; --recipe paper: px]",
        "[default: 0.001]",
        "[default: 0.9]",
    ):
        assert expected in text, expected

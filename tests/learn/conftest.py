"""Fixtures of the dedkit.learn tests: one tiny training set and one tiny model per
session (CPU, one thread, a few seconds)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tiny_set import make_tiny_set  # noqa: E402


@pytest.fixture(scope="session")
def tiny_set(tmp_path_factory) -> Path:
    return make_tiny_set(tmp_path_factory.mktemp("learn") / "tiny.h5", n=300)


@pytest.fixture(scope="session")
def tiny_model(tiny_set, tmp_path_factory) -> Path:
    pytest.importorskip("torch")
    from dedkit.jobs.learn import train_model
    from dedkit.learn.train import TrainConfig

    out = tmp_path_factory.mktemp("model") / "tiny"
    config = TrainConfig(arch="c16", epochs=2, optimizer="adam", threads=1, eval_samples=50)
    train_model(tiny_set, out, config, command="pytest tiny_model")
    return out.with_name("tiny.json")

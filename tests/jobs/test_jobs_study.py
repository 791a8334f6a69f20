"""The study jobs called directly: run a study by name, check its figure's path first."""

from __future__ import annotations

import pytest

from dedkit.errors import DedkitError
from dedkit.jobs import run_study
from dedkit.jobs.study import STUDIES

SMALL = {"samples": 100_000, "doses": (1.0,)}


def test_run_study_by_name_leaves_none_options_to_the_study():
    # seed=None: the study's own default seed, as the command line passes unset options
    result = run_study("rounding-dqe", seed=None, **SMALL)
    assert result.name == "rounding-dqe"
    assert result.to_dict() == run_study("rounding-dqe", seed=1, **SMALL).to_dict()


def test_an_existing_figure_is_refused_before_the_run(tmp_path, monkeypatch):
    figure = tmp_path / "dqe.png"
    figure.write_bytes(b"old")
    import dedkit.studies.rounding_dqe as study

    def never(**options):
        raise AssertionError("the study ran although its figure was refused")

    monkeypatch.setattr(study, "run", never)
    with pytest.raises(DedkitError):
        run_study("rounding-dqe", figure=figure, **SMALL)
    assert figure.read_bytes() == b"old"


def test_every_study_module_is_named():
    import importlib

    for name, module in STUDIES.items():
        assert importlib.import_module(f"dedkit.studies.{module}").__name__.endswith(module)
        assert name.replace("-", "_") == module

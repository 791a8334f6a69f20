"""One CLI vocabulary (issue 14 item 6): the shared options mean the same in every
command, and every job report is a JobReport."""

from __future__ import annotations

import click
import pytest

from dedkit.cli.main import cli
from dedkit.report import JobReport


def _commands(group=cli, path=()):
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))
        else:
            yield " ".join((*path, name)), command


COMMANDS = dict(_commands())


def _options(flag):
    for name, command in COMMANDS.items():
        for param in command.params:
            if isinstance(param, click.Option) and flag in param.opts:
                yield name, param


def test_the_tree_is_complete():
    # the stack and hpd commands live in their own modules but are still registered
    for name in ("norm", "pack", "rotflip", "header", "raw info", "hpd clusters", "demo"):
        assert name in COMMANDS


@pytest.mark.parametrize(
    ("flag", "dest", "help_text"),
    [
        ("--json", "as_json", "Print the report as JSON."),
        ("--quiet", "quiet", "No progress bar."),
    ],
)
def test_flags_mean_the_same_everywhere(flag, dest, help_text):
    found = list(_options(flag))
    assert found
    for name, param in found:
        assert param.is_flag and param.name == dest and param.help == help_text, name
        assert param.default is False, name


def test_force_is_a_flag_everywhere():
    found = dict(_options("--force"))
    assert len(found) > 20
    for name, param in found.items():
        assert param.is_flag and param.name == "force" and param.default is False, name


def test_seed_is_an_integer_everywhere():
    for name, param in _options("--seed"):
        assert param.type is click.INT and param.name == "seed", name


def test_every_writing_command_takes_force():
    # a command that writes takes --force; those that only read or compute do not
    readers = {"header", "raw info", "camera info", "camera check", "camera capture-time",
               "camera dose-rate", "sim validate"}  # fmt: skip
    for name, command in COMMANDS.items():
        has_force = any(p.name == "force" for p in command.params)
        assert has_force == (name not in readers), name


def test_job_reports_are_job_reports():
    from dedkit.jobs.demo import DemoSummary, SampleReport
    from dedkit.jobs.electrons import ElectronsReport
    from dedkit.jobs.hpd import HpdReport
    from dedkit.jobs.sim import SimReport
    from dedkit.jobs.stacks import StackReport
    from dedkit.learn.evaluate import EvaluationReport
    from dedkit.learn.scan import ScanReport
    from dedkit.sim.validate import ValidationReport
    from dedkit.studies import StudyResult

    for report in (DemoSummary, SampleReport, ElectronsReport, HpdReport, SimReport,
                   StackReport, EvaluationReport, ScanReport, ValidationReport,
                   StudyResult):  # fmt: skip
        assert issubclass(report, JobReport), report


def test_stack_report_warnings_follow_its_counts():
    from dedkit.jobs.stacks import StackReport

    report = StackReport(command="norm", inputs=["a"], output="b", frames=1, shape=(1, 2, 2),
                         dtype="uint8", n_saturated=2)  # fmt: skip
    assert report.warnings == ["2 values were above the output range and saturated"]
    report.n_truncated = 1  # a job may count after making its report
    report.notes.append("a note")
    assert report.warnings[1:] == ["1 pixels were replaced by high truncation", "a note"]
    assert "warnings" not in report.to_dict()


def test_train_report_is_a_job_report():
    pytest.importorskip("torch")
    from dedkit.learn.train import TrainReport

    assert issubclass(TrainReport, JobReport)

"""Issue 13 item 19: every example of README.md and docs/*.md runs as written.

Each fenced block tagged ``bash`` or ``python`` is run in a fresh folder holding the
files ``dedkit sample`` writes (the names the examples use), and must exit with status 0;
a ``python`` block written as an interactive session (``>>>``, as the README's) runs as a
doctest, so the output it shows must be the output it gives (issue 14).
``dedkit`` in a bash block is the dedkit under test (a shim on PATH), not whichever is
installed. A block that cannot run (installation, runs of minutes to hours) is preceded by
``<!-- not run: reason -->``; every other fence must name its language (``text`` for
output and synopses), so no example escapes the test by accident.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import dedkit

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.S | re.M)
NOT_RUN = re.compile(r"<!--\s*not run:\s*(\S[^>]*?)\s*-->\s*$")
RUN = {"bash", "python"}
#: at most this many blocks may be left out: they must stay few
MAX_NOT_RUN = 7
#: seconds one block may take
TIMEOUT = 900


def _blocks():
    """(file, line, language, code, reason not run or None) of every fenced block."""
    out = []
    for doc in DOCS:
        if not doc.is_file():
            continue
        text = doc.read_text(encoding="utf-8")
        for m in FENCE.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
            reason = NOT_RUN.search(before)
            out.append(
                (doc.relative_to(ROOT).as_posix(), line, m.group(1).strip(), m.group(2),
                 reason.group(1) if reason else None)
            )  # fmt: skip
    return out


BLOCKS = _blocks()
RUNNABLE = [b for b in BLOCKS if b[2] in RUN and b[4] is None]


def test_readme_python_example_is_a_doctest_with_public_imports_issue_14():
    """Issue 14: the README's Python example runs as a doctest and imports only the
    subpackages' public names (``from dedkit.io import ...``, never a module)."""
    readme = [b for b in RUNNABLE if b[0] == "README.md" and b[2] == "python"]
    if not readme:
        pytest.skip("README.md is not beside the tests")
    for _, line, _, code, _ in readme:
        assert code.lstrip().startswith(">>>"), f"README.md:{line} is not a doctest"
        imports = re.findall(r"from (dedkit\S*) import", code)
        assert imports, f"README.md:{line} imports nothing from dedkit"
        deep = [m for m in imports if m.count(".") > 1]
        assert not deep, f"README.md:{line} imports modules, not public names: {deep}"


def test_every_block_names_its_language_and_few_are_left_out_issue_13_item_19():
    """Issue 13 item 19: an untagged block would escape the test; left-out blocks say
    why and stay few."""
    if not BLOCKS:
        pytest.skip("README.md and docs/ are not beside the tests")
    untagged = [f"{f}:{line}" for f, line, lang, _, _ in BLOCKS if not lang]
    assert not untagged, f"fenced blocks without a language (bash, python, text): {untagged}"
    left_out = [f"{f}:{line}" for f, line, lang, _, why in BLOCKS if why and lang in RUN]
    assert len(left_out) <= MAX_NOT_RUN, left_out
    assert len(RUNNABLE) >= 8


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    """``dedkit sample`` once; each block gets a copy."""
    from dedkit.jobs.demo import write_samples

    folder = tmp_path_factory.mktemp("docs") / "sample"
    write_samples(folder)
    return folder


@pytest.fixture(scope="module")
def shim(tmp_path_factory) -> dict:
    """Environment whose ``dedkit`` and ``python`` run the dedkit under test."""
    bin_dir = tmp_path_factory.mktemp("bin")
    script = bin_dir / "dedkit"
    script.write_text(
        "#!/bin/sh\n"
        f'exec "{sys.executable}" -c "import sys; from dedkit.cli.main import main; '
        'sys.exit(main(sys.argv[1:]))" "$@"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    src = str(Path(dedkit.__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent),
                                   env.get("PATH", "")])  # fmt: skip
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    env["MPLBACKEND"] = "Agg"
    return env


@pytest.mark.slow
@pytest.mark.parametrize(
    ("doc", "line", "language", "code"),
    [pytest.param(f, line, lang, code, id=f"{f}:{line}") for f, line, lang, code, _ in RUNNABLE],
)
def test_example_runs_as_written_issue_13_item_19(doc, line, language, code, sample, shim,
                                                  tmp_path):  # fmt: skip
    """Issue 13 item 19: the example at ``doc:line`` runs in a folder made by
    ``dedkit sample`` and exits with status 0."""
    where = tmp_path / "work"
    shutil.copytree(sample, where)
    if language == "bash":
        command = ["bash", "-e", "-o", "pipefail", "-c", code]
    elif code.lstrip().startswith(">>>"):
        (where / "example.txt").write_text(code)
        command = [sys.executable, "-m", "doctest", "-o", "ELLIPSIS", "-o",
                   "NORMALIZE_WHITESPACE", "example.txt"]  # fmt: skip
    else:
        (where / "example.py").write_text(code)
        command = [sys.executable, "example.py"]
    proc = subprocess.run(
        command, cwd=where, env=shim, capture_output=True, text=True, timeout=TIMEOUT,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, (
        f"{doc}:{line} exited with {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}"
        f"\n--- stderr\n{proc.stderr[-3000:]}"
    )

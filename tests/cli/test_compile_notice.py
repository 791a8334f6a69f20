"""Issue 13 item 17: a command says when it compiles dedkit's numba kernels (a cold
numba cache), and says nothing when they come from the cache."""

from __future__ import annotations

import os
import select
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dedkit.cli.output import COMPILE_NOTICE

pty = pytest.importorskip("pty")

SRC = Path(__file__).resolve().parents[2] / "src"
DEDKIT = "import sys; from dedkit.cli.main import main; sys.exit(main(sys.argv[1:]))"


def _dedkit_on_a_terminal(args, cwd, cache) -> tuple[int, str]:
    """Run ``dedkit ARGS`` in a new process whose stderr is a terminal (the notice, like
    the progress bars, is for terminals); returns (status, stderr)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), COLUMNS="200")
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    master, slave = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", DEDKIT, *map(str, args)],
            cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=slave, timeout=600, check=False,
        )  # fmt: skip
    finally:
        os.close(slave)
    chunks = []
    while select.select([master], [], [], 0.2)[0]:
        try:
            data = os.read(master, 65536)
        except OSError:  # the terminal's other end is closed: all read
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.returncode, b"".join(chunks).decode(errors="replace")


@pytest.mark.slow
def test_compile_notice_on_a_cold_cache_only_issue_13_item_17(tmp_path):
    """Issue 13 item 17: with an empty numba cache, ``dedkit reduce`` (two small kernels)
    says it is compiling before it does; run again, the kernels come from the cache and
    nothing is said; a command that compiles nothing never says it."""
    import mrcfile

    with mrcfile.new(tmp_path / "tiny.mrc") as m:
        m.set_data(np.arange(2 * 4 * 6, dtype=np.int16).reshape(2, 4, 6))
    cache = tmp_path / "numba-cache"
    cache.mkdir()
    notice = " ".join(COMPILE_NOTICE.split())

    status, err = _dedkit_on_a_terminal(["header", "tiny.mrc"], tmp_path, cache)
    assert status == 0 and notice not in " ".join(err.split()), err

    reduce = ["reduce", "tiny.mrc", "small.mrc", "--factor", "2", "--force", "--quiet"]
    status, err = _dedkit_on_a_terminal(reduce, tmp_path, cache)
    assert status == 0, err
    assert " ".join(err.split()).count(notice) == 1, err
    assert any(cache.rglob("*.nbi")), "numba wrote no cache index"

    status, err = _dedkit_on_a_terminal(reduce, tmp_path, cache)
    assert status == 0 and notice not in " ".join(err.split()), err

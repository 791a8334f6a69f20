"""Issue 13 item 9: readers refuse FIFOs, devices, sockets and folders with one line.

Every case runs in a child process with a timeout: before the fix, opening a FIFO for
reading blocked forever, so a regression must fail here instead of hanging the suite.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import dedkit
from dedkit.errors import DedkitError
from dedkit.io.inputs import check_input_file, check_input_path

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")

TIMEOUT_S = 60

_CLI = "import sys; from dedkit.cli.main import main; sys.exit(main(sys.argv[1:]))"


def _child_env() -> dict:
    """The environment with the dedkit under test first on the path (the child runs in
    another folder, where a relative PYTHONPATH would find the installed copy)."""
    env = {k: v for k, v in os.environ.items() if k != "DEDKIT_DEBUG"}
    source = str(Path(dedkit.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([source, *filter(None, [env.get("PYTHONPATH")])])
    return env


def _run(code: str, *args, cwd):
    try:
        return subprocess.run(
            [sys.executable, "-c", code, *map(str, args)],
            capture_output=True,
            text=True,
            cwd=cwd,
            timeout=TIMEOUT_S,
            env=_child_env(),
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"hung on a FIFO: {code} {args}")


def _assert_one_line(result, *words):
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def fifo_folder(tmp_path):
    """A folder with FIFOs under the names of every kind of input, and one real stack."""
    import mrcfile

    for name in (
        "in.mrc",
        "in.tif",
        "gain.dm4",
        "defects.txt",
        "run_master_0.json",
        "events.h5",
        "tilt.mdoc",
        "c.clust",
    ):
        os.mkfifo(tmp_path / name)
    with mrcfile.new(tmp_path / "real.mrc") as m:
        m.set_data(np.zeros((2, 8, 10), np.int16))
    return tmp_path


@pytest.mark.parametrize(
    "args",
    [
        ["header", "in.mrc"],
        ["header", "in.tif"],
        ["convert", "in.mrc", "out.tif"],
        ["norm", "real.mrc", "gain.dm4", "out.mrc"],
        ["defectmap", "defects.txt", "real.mrc", "out.mrc"],
        ["raw", "info", "run_master_0.json"],
        ["hpd", "image", "events.h5", "-o", "out.mrc"],
    ],
    ids=lambda args: " ".join(args),
)
def test_issue13_item9_cli_refuses_fifo(fifo_folder, args):
    """`mkfifo in.mrc; dedkit header in.mrc` hung; now one line, exit 2, nothing written."""
    result = _run(_CLI, *args, cwd=fifo_folder)
    line = _assert_one_line(result, "named pipe (FIFO)", "not a regular file")
    assert "dedkit: error:" in line
    assert not (fifo_folder / "out.mrc").exists()
    assert not (fifo_folder / "out.tif").exists()


_READERS = {
    "MrcReader": ("from dedkit.io.mrc import MrcReader as f", "in.mrc"),
    "TiffReader": ("from dedkit.io.tiff import TiffReader as f", "in.tif"),
    "open_stack": ("from dedkit.io.stack import open_stack as f", "in.mrc"),
    "read_image": ("from dedkit.io.images import read_image as f", "gain.dm4"),
    "read_dm": ("from dedkit.io.dm import read_dm as f", "gain.dm4"),
    "read_defects": ("from dedkit.io.defects import read_defects as f", "defects.txt"),
    "read_mdoc": ("from dedkit.io.mdoc import read_mdoc as f", "tilt.mdoc"),
    "read_master": ("from dedkit.io.sls import read_master as f", "run_master_0.json"),
    "open_h5": (
        "from dedkit.io.h5 import open_h5; f = lambda p: open_h5(p, 'table file')",
        "events.h5",
    ),
    "read_clusters": ("from dedkit.io.clust import read_clust as f", "c.clust"),
    "read_text_file": (
        "from dedkit.io.text import read_text_file; f = lambda p: read_text_file(p, 'scan CSV')",
        "defects.txt",
    ),
}


@pytest.mark.parametrize("reader", sorted(_READERS))
def test_issue13_item9_every_reader_refuses_fifo(fifo_folder, reader):
    """Each reader of dedkit.io raises DedkitError on a FIFO instead of blocking."""
    importer, name = _READERS[reader]
    code = textwrap.dedent(
        f"""
        import sys
        from dedkit.errors import DedkitError
        {importer}
        try:
            f(sys.argv[1])
        except DedkitError as e:
            print(e)
            sys.exit(2)
        sys.exit(0)
        """
    )
    result = _run(code, name, cwd=fifo_folder)
    assert result.returncode == 2, result
    assert "named pipe (FIFO)" in result.stdout, result


def test_issue13_item9_devices_sockets_folders(tmp_path):
    """Character devices and sockets are refused; a folder only where a file is expected."""
    with pytest.raises(DedkitError, match="character device"):
        check_input_file("/dev/null")
    with pytest.raises(DedkitError, match="is a folder, not a defect list"):
        check_input_file(tmp_path, "defect list")
    assert check_input_path(tmp_path) == tmp_path
    with pytest.raises(DedkitError, match="no such file"):
        check_input_file(tmp_path / "missing.mrc", "MRC file")
    sock_path = tmp_path / "s.mrc"
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(sock_path))
        with pytest.raises(DedkitError, match="is a socket, not a regular file"):
            check_input_file(sock_path)
    finally:
        sock.close()
    link = tmp_path / "link.mrc"
    real = tmp_path / "real.mrc"
    real.write_bytes(b"x")
    link.symlink_to(real)
    assert check_input_file(link) == link


def test_issue13_item9_folder_where_a_file_is_expected(tmp_path):
    """A folder named like an MRC file given to a file reader: one line, not IsADirectory."""
    from dedkit.io.dm import read_dm
    from dedkit.io.mrc import MrcReader

    (tmp_path / "x.mrc").mkdir()
    (tmp_path / "x.dm4").mkdir()
    with pytest.raises(DedkitError, match="is a folder, not a MRC file"):
        MrcReader(tmp_path / "x.mrc")
    with pytest.raises(DedkitError, match="is a folder, not a DM file"):
        read_dm(tmp_path / "x.dm4")


def test_issue13_item9_fifo_inside_a_frame_folder(tmp_path):
    """A FIFO among a folder's numbered frames is refused, not skipped nor waited on."""
    import tifffile

    folder = tmp_path / "frames"
    folder.mkdir()
    tifffile.imwrite(folder / "f_001.tif", np.zeros((4, 6), np.uint8))
    os.mkfifo(folder / "f_002.tif")
    code = (
        "import sys\nfrom dedkit.errors import DedkitError\n"
        "from dedkit.io.stack import open_stack\n"
        "try:\n    open_stack(sys.argv[1])\n"
        "except DedkitError as e:\n    print(e); sys.exit(2)\n"
    )
    result = _run(code, folder, cwd=tmp_path)
    assert result.returncode == 2, result
    assert "f_002.tif" in result.stdout and "named pipe" in result.stdout

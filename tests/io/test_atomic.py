"""io.atomic's one-call writer: whole files or nothing."""

from __future__ import annotations

import builtins
import errno
import os

import pytest

from dedkit.errors import DedkitError
from dedkit.io import atomic
from dedkit.io.atomic import published, reset_published, write_atomic


def test_write_atomic_writes_bytes_and_text(tmp_path):
    reset_published()
    assert write_atomic(tmp_path / "a.bin", b"\x00\xff") == tmp_path / "a.bin"
    write_atomic(tmp_path / "b.txt", "MÖNCH\r\nline\n", record=False)
    write_atomic(tmp_path / "c.txt", "synced\n", fsync=True)
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\xff"
    # UTF-8, newlines as given (no translation)
    assert (tmp_path / "b.txt").read_bytes() == "MÖNCH\r\nline\n".encode()
    assert (tmp_path / "c.txt").read_text() == "synced\n"
    assert published() == [tmp_path / "a.bin", tmp_path / "c.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.txt", "c.txt"]


def test_write_atomic_on_a_full_disk_leaves_nothing_new(tmp_path, monkeypatch):
    target = tmp_path / "out.txt"
    target.write_text("old")

    def full_disk(path, mode="r", *args, **kwargs):
        builtins.open(path, mode, *args, **kwargs).close()  # the temporary exists
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic, "open", full_disk, raising=False)
    with pytest.raises(DedkitError) as info:
        write_atomic(target, "new")
    monkeypatch.undo()
    assert str(info.value) == f"{target}: cannot write: No space left on device"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    assert target.read_text() == "old"

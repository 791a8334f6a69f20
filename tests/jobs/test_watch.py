"""MovieWatcher: movies reported once complete and settled, never while written; inotify,
polling and the fallback between them. Settle times are a fraction of a second so the
tests stay fast; each writer thread takes about a second."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from dedkit.errors import DedkitError
from dedkit.io.mrc import MrcWriter
from dedkit.jobs import watch as watch_module
from dedkit.jobs.watch import MovieWatcher, filesystem_type, is_network_filesystem

SETTLE = 0.4
SHAPE = (32, 40)


def mrc_bytes(frames: int) -> bytes:
    """A complete int16 MRC stack as bytes (header, then the frames)."""

    def build(folder: Path) -> bytes:
        path = folder / "x.mrc"
        with MrcWriter(path, (frames, *SHAPE), np.int16) as writer:
            for i in range(frames):
                writer.write(np.full(SHAPE, i, np.int16))
        return path.read_bytes()

    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        return build(Path(folder))


class SlowWriter(threading.Thread):
    """Writes a movie frame by frame, as a camera server does, and notes when it is done."""

    def __init__(self, target, chunks, pause):
        super().__init__(daemon=True)
        self.target, self.chunks, self.pause = Path(target), chunks, pause
        self.finished_at = None

    def run(self):
        with open(self.target, "wb") as f:
            for i, chunk in enumerate(self.chunks):
                if i:
                    time.sleep(self.pause)
                # noted before the write: a watcher may see the file change as soon as
                # the write starts, before this thread runs again (under load)
                self.finished_at = time.monotonic()
                f.write(chunk)
                f.flush()


def mrc_chunks(frames: int) -> list[bytes]:
    """The MRC's bytes in the order a writer produces them: header first, then frames."""
    data = mrc_bytes(frames)
    frame = SHAPE[0] * SHAPE[1] * 2
    return [data[:1024]] + [data[1024 + i * frame : 1024 + (i + 1) * frame] for i in range(frames)]


def collect(watcher, until, step=0.05):
    """(time, path) of the first movies reported before ``until`` (monotonic)."""
    seen = []
    while time.monotonic() < until and not seen:
        for path in watcher.ready(timeout=step):
            seen.append((time.monotonic(), path))
    return seen


@pytest.mark.parametrize("poll", [None, True], ids=["inotify", "polling"])
def test_mrc_written_slowly_is_reported_only_after_it_is_complete(tmp_path, poll):
    movie = tmp_path / "m_001.mrc"
    # the header claims all 8 frames from the start; frames follow every 0.12 s
    writer = SlowWriter(movie, mrc_chunks(8), pause=0.12)
    with MovieWatcher(tmp_path, settle=SETTLE, poll=poll, poll_interval=0.1) as watcher:
        assert watcher.mode == ("polling" if poll else "inotify")
        writer.start()
        seen = collect(watcher, time.monotonic() + 0.12 * 9 + SETTLE + 1.5)
    writer.join()
    assert [p for _, p in seen] == [movie]
    assert seen[0][0] >= writer.finished_at + SETTLE


def test_mrc_whose_header_grows_with_each_frame_waits_for_settle(tmp_path):
    """Each prefix is a complete-looking MRC: only the unchanged size for `settle` keeps
    the watcher from reading the movie between two frames."""
    movie = tmp_path / "m_002.mrc"
    chunks = mrc_chunks(6)
    data = b"".join(chunks)
    frame = SHAPE[0] * SHAPE[1] * 2

    def prefixes():
        for n in range(1, 7):
            header = bytearray(data[:1024])
            header[8:12] = np.int32(n).tobytes()  # nz
            yield bytes(header) + data[1024 : 1024 + n * frame]

    class Rewriter(SlowWriter):
        def run(self):
            for i, content in enumerate(prefixes()):
                if i:
                    time.sleep(self.pause)
                self.finished_at = time.monotonic()  # before the write (see SlowWriter)
                movie.write_bytes(content)

    writer = Rewriter(movie, [], pause=0.15)
    with MovieWatcher(tmp_path, settle=SETTLE, poll_interval=0.05) as watcher:
        writer.start()
        seen = collect(watcher, time.monotonic() + 0.15 * 7 + SETTLE + 1.5)
    writer.join()
    assert [p for _, p in seen] == [movie]
    assert seen[0][0] >= writer.finished_at + SETTLE
    from dedkit.io.stack import open_stack

    with open_stack(movie) as stack:
        assert stack.info.nz == 6


def test_tiff_written_page_by_page(tmp_path):
    movie = tmp_path / "m_003.tif"

    def write():
        with tifffile.TiffWriter(movie) as tif:
            for i in range(6):
                if i:
                    time.sleep(0.15)
                tif.write(np.full(SHAPE, i, np.uint16), photometric="minisblack")
                tif.filehandle.flush()
        writer.finished_at = time.monotonic()

    writer = threading.Thread(target=write, daemon=True)
    writer.finished_at = None
    with MovieWatcher(tmp_path, settle=SETTLE, poll_interval=0.1) as watcher:
        writer.start()
        seen = collect(watcher, time.monotonic() + 0.15 * 7 + SETTLE + 1.5)
    writer.join()
    assert [p for _, p in seen] == [movie]
    assert seen[0][0] >= writer.finished_at  # closed; the last page came >= SETTLE before
    with tifffile.TiffFile(movie) as tif:
        assert len(tif.pages) == 6


def test_stalled_truncated_movie_is_never_reported(tmp_path):
    chunks = mrc_chunks(10)
    (tmp_path / "stalled.mrc").write_bytes(b"".join(chunks[:4]))  # header + 3 of 10 frames
    with MovieWatcher(tmp_path, settle=0.1, poll=True, poll_interval=0.05) as watcher:
        assert watcher.ready(timeout=0.8) == []
        reason = watcher.waiting()[tmp_path / "stalled.mrc"]
    assert "10 frames" in reason and "3 whole frames" in reason
    assert watcher.stalled(0.5) == {tmp_path / "stalled.mrc": reason}
    assert watcher.stalled(60) == {}


def test_existing_movies_reported_once_and_again_by_a_new_watcher(tmp_path):
    data = mrc_bytes(2)
    for name in ("b.mrc", "a.mrc"):
        (tmp_path / name).write_bytes(data)
    with MovieWatcher(tmp_path, settle=0.1, poll_interval=0.05) as watcher:
        assert [p.name for p in watcher.ready(timeout=2)] == ["a.mrc", "b.mrc"]
        assert watcher.ready(timeout=0.4) == []
        (tmp_path / "a.mrc").write_bytes(data)  # rewritten: still reported only once
        assert watcher.ready(timeout=0.4) == []
    with MovieWatcher(tmp_path, settle=0.1, poll_interval=0.05) as again:
        assert [p.name for p in again.ready(timeout=2)] == ["a.mrc", "b.mrc"]
    assert again.ready(timeout=0) == []  # stopped


def test_inotify_events_wake_the_watcher_before_the_next_listing(tmp_path):
    if is_network_filesystem(tmp_path):
        pytest.skip("the temporary folder is on a network file system")
    with MovieWatcher(tmp_path, settle=0.1, poll_interval=30) as watcher:
        assert watcher.mode == "inotify"
        watcher.ready(timeout=0)  # the first listing; the next one is 30 s away
        start = time.monotonic()
        (tmp_path / ".m.mrc.part").write_bytes(mrc_bytes(2))
        os.replace(tmp_path / ".m.mrc.part", tmp_path / "m.mrc")  # renamed into place
        assert watcher.ready(timeout=5) == [tmp_path / "m.mrc"]
        assert time.monotonic() - start < 5


def test_hidden_files_outputs_and_other_files_are_not_reported(tmp_path):
    data = mrc_bytes(2)
    for name in (".m.part-1.mrc", "m_DW.mrc", "m.mrc", "notes.txt"):
        (tmp_path / name).write_bytes(data)
    (tmp_path / "m_align.json").write_text("{}")
    (tmp_path / "raw.mrc").write_bytes(data)
    with MovieWatcher(tmp_path, settle=0.05, poll=True, poll_interval=0.05) as watcher:
        assert watcher.ready(timeout=1) == [tmp_path / "raw.mrc"]
        assert watcher.ready(timeout=0.3) == []


def test_frame_mdoc_awaited_once_the_session_writes_them(tmp_path):
    data = mrc_bytes(2)
    for name in ("a.mrc", "b.mrc"):
        (tmp_path / name).write_bytes(data)
    (tmp_path / "a.mrc.mdoc").write_text("[FrameSet = 0]\nNumSubFrames = 2\n")
    with MovieWatcher(tmp_path, settle=0.1, poll_interval=0.05) as watcher:
        assert watcher.ready(timeout=1) == [tmp_path / "a.mrc"]
        assert watcher.ready(timeout=0.5) == []
        assert "b.mrc.mdoc is not written yet" in watcher.waiting()[tmp_path / "b.mrc"]
        (tmp_path / "b.mrc.mdoc").write_text("[FrameSet = 0]\nNumSubFrames = 2\n")
        assert watcher.ready(timeout=2) == [tmp_path / "b.mrc"]


def test_polling_fallback_when_inotify_cannot_start(tmp_path, monkeypatch):
    def refuse(self):
        raise OSError(28, "inotify watch limit reached")

    monkeypatch.setattr(MovieWatcher, "_start_observer", refuse)
    (tmp_path / "m.mrc").write_bytes(mrc_bytes(2))
    with MovieWatcher(tmp_path, settle=0.05, poll_interval=0.05) as watcher:
        assert watcher.mode == "polling"
        assert "inotify watch limit reached" in watcher.mode_reason
        assert watcher.ready(timeout=1) == [tmp_path / "m.mrc"]
    with pytest.raises(DedkitError, match="cannot watch with inotify"):
        MovieWatcher(tmp_path, poll=False).start()


def test_network_file_system_chooses_polling(tmp_path, monkeypatch):
    mounts = tmp_path / "mounts"
    mounts.write_text(
        "/dev/sda1 / ext4 rw 0 0\n"
        f"server:/export {tmp_path}/cryo\\040data nfs4 rw 0 0\n"
        "srv /mnt/x fuse.sshfs rw 0 0\n"
    )
    folder = tmp_path / "cryo data" / "Frames"
    folder.mkdir(parents=True)
    assert filesystem_type(folder, mounts) == "nfs4"
    assert filesystem_type(tmp_path, mounts) == "ext4"
    assert is_network_filesystem("/mnt/x/y", mounts)
    assert filesystem_type(folder, tmp_path / "absent") is None

    monkeypatch.setattr(
        watch_module, "filesystem_type", lambda path, _=None: filesystem_type(path, mounts)
    )
    with MovieWatcher(folder) as watcher:
        assert watcher.mode == "polling"
        assert "nfs4" in watcher.mode_reason


def test_bad_folder_and_values(tmp_path):
    with pytest.raises(DedkitError, match="not a folder"):
        MovieWatcher(tmp_path / "absent")
    with pytest.raises(DedkitError, match="poll_interval"):
        MovieWatcher(tmp_path, poll_interval=0)

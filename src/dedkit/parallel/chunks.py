"""Splitting a run of frames into chunks."""

from __future__ import annotations

from dataclasses import dataclass

from dedkit.errors import DedkitError

__all__ = ["Chunk", "MAX_CHUNK_FRAMES", "plan_chunks"]

#: Largest chunk: frame counts are recorded in files as int32 (and no run is longer)
MAX_CHUNK_FRAMES = 2**31 - 1


@dataclass(frozen=True)
class Chunk:
    """Frames ``start`` to ``stop - 1`` of a run, the ``index``-th chunk."""

    index: int
    start: int
    stop: int

    @property
    def n_frames(self) -> int:
        return self.stop - self.start


def plan_chunks(n_frames: int, chunk_frames: int, start: int = 0) -> list[Chunk]:
    """Consecutive chunks of at most ``chunk_frames`` frames covering frames
    ``start`` to ``start + n_frames - 1`` exactly once."""
    if not 1 <= chunk_frames <= MAX_CHUNK_FRAMES:
        raise DedkitError(f"chunk size must be 1 to {MAX_CHUNK_FRAMES} frames, got {chunk_frames}")
    if n_frames < 0 or start < 0:
        raise DedkitError(f"bad frame range: start {start}, {n_frames} frames")
    stop = start + n_frames
    return [
        Chunk(i, s, min(s + chunk_frames, stop))
        for i, s in enumerate(range(start, stop, chunk_frames))
    ]

"""Figures to files: the one writer of every figure dedkit draws.

The domain packages and the studies build a matplotlib ``Figure`` and return it (they
write no files); the jobs write it here, atomically (:func:`dedkit.io.atomic.atomic_output`:
a temporary renamed into place, removed on failure; a full disk is one line naming the
file), in the format its suffix names (:func:`dedkit.io.atomic.figure_format`). This
module needs no matplotlib import of its own: it only calls the figure's ``savefig``.
"""

from __future__ import annotations

from pathlib import Path

from dedkit.io.atomic import atomic_output, figure_format

__all__ = ["save_figure"]


def save_figure(fig, path, *, dpi=None) -> Path:
    """Write a matplotlib figure to ``path``, atomically, in the format of its suffix.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        A figure with a canvas (pyplot's, or ``FigureCanvasAgg(fig)``).
    path : path-like
        ``.png``, ``.pdf`` or ``.svg`` (another suffix is written as PNG). Whether an
        existing file may be replaced is the caller's decision
        (:func:`dedkit.io.atomic.check_outputs`).
    dpi : float, optional
        Resolution; None: matplotlib's ``savefig.dpi`` setting (by default the figure's).

    Returns
    -------
    Path
        ``path``.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> fig = Figure(figsize=(2, 2))
    >>> _ = fig.subplots().plot([0, 1], [1, 0])
    >>> save_figure(fig, "line.png", dpi=50).read_bytes()[:4]
    b'\\x89PNG'
    """
    path = Path(path)
    with atomic_output(path) as temporary:
        fig.savefig(temporary, format=figure_format(path), dpi=dpi)
    return path

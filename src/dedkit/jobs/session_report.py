"""A session's ``report.html``: one self-contained page of every movie of a session.

The page needs no server and no network: it opens from the file in any browser. Its
plots are matplotlib (Agg) PNGs and its spectrum thumbnails JPEGs, all inline as base64
``data:`` URIs; its style sheet and its script (the table's sorting and filter) are inline
too. It shows:

- a summary (movies done / skipped / failed, median drift and resolution, and the
  caller's own summary line), and the failed movies with their one-line errors;
- the distributions of the total drift, of the early drift and of the even/odd FRC 0.143
  resolution;
- all trajectories overlaid (each from its first frame, coloured by its total drift) and
  the drift accumulated frame by frame;
- a gallery of power-spectrum thumbnails, capped at :data:`MAX_THUMBNAILS`: with more
  movies than that, the movies of largest drift and of lowest FRC resolution, then an
  evenly spaced sample of the others, each group labelled as such;
- the session table (:data:`COLUMNS`), sortable by a click on a header (numbers
  numerically, empty cells last in either direction), filterable, failed rows in red and
  warnings in amber.

For 1000 movies the page stays near 1 MB: the table (about 0.5 kB a movie), two plots of
fixed pixel size whatever the number of movies, and at most :data:`MAX_THUMBNAILS`
thumbnails of :data:`THUMBNAIL_PIXELS` pixels (about 8 kB each as base64 JPEG).
Without matplotlib the page still renders, with a note where the plots would be.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from dedkit.io.atomic import write_atomic
from dedkit.metrics.spectrum import power_spectrum_thumbnail

__all__ = [
    "COLUMNS",
    "MAX_THUMBNAILS",
    "THUMBNAIL_PIXELS",
    "render_session_report",
    "spectrum_thumbnail",
    "write_session_report",
]

#: at most this many spectrum thumbnails in a page (the size of a 1000-movie page)
MAX_THUMBNAILS = 48
#: side of a thumbnail in the page (a larger PNG is reduced by averaging pixel blocks)
THUMBNAIL_PIXELS = 128

#: the table's columns: (row key, header, unit, format); "#" is the session order and
#: "notes" the error of a failed movie, else its warnings
COLUMNS = [
    ("index", "#", "", "d"),
    ("name", "Movie", "", None),
    ("status", "Status", "", None),
    ("frames", "Frames", "", "d"),
    ("dose_per_frame", "Dose", "e/Å² per frame", ".3g"),
    ("total_dose", "Total dose", "e/Å²", ".1f"),
    ("pixel_size", "Pixel", "Å", ".3f"),
    ("total_drift_px", "Total drift", "px", ".2f"),
    ("early_drift_px", "Early drift", "px", ".2f"),
    ("max_jump_px", "Max jump", "px", ".2f"),
    ("frc_0143_A", "FRC 0.143", "Å", ".2f"),
    ("frc_0143_nyquist", "FRC 0.143", "× Nyquist", ".3f"),
    ("seconds", "Time", "s", ".1f"),
    ("notes", "Notes", "", None),
]

# failed movies listed above the table (all of them are in the table)
_MAX_LISTED_FAILURES = 20


def spectrum_thumbnail(image, size: int = 256) -> bytes:
    """A movie's power-spectrum thumbnail as PNG bytes (8-bit grey).

    The picture is :func:`dedkit.metrics.spectrum.power_spectrum_thumbnail`: the log power
    spectrum averaged over tiles of the image, zero frequency at the centre, Nyquist at
    the edges.

    Parameters
    ----------
    image : (ny, nx) array
        The aligned sum.
    size : int
        Side of the thumbnail in pixels (even, at least 16).

    Returns
    -------
    bytes
        A ``size`` x ``size`` grey PNG.

    Examples
    --------
    >>> import imagecodecs
    >>> import numpy as np
    >>> png = spectrum_thumbnail(np.random.default_rng(0).random((300, 400)), size=64)
    >>> png[:4], imagecodecs.png_decode(png).shape
    (b'\\x89PNG', (64, 64))
    """
    import imagecodecs

    return bytes(imagecodecs.png_encode(power_spectrum_thumbnail(image, size)))


def write_session_report(path, rows, trajectories=None, thumbnails=None, **options) -> Path:
    """Write :func:`render_session_report`'s page to ``path``, atomically (UTF-8).

    Parameters
    ----------
    path : path-like
        Usually ``report.html`` in the session's output folder.
    rows, trajectories, thumbnails, **options
        As :func:`render_session_report`.

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> rows = [{"name": "m_0001", "status": "failed", "error": "truncated file"}]
    >>> path = write_session_report("report.html", rows, title="Session 1")
    >>> "truncated file" in path.read_text(encoding="utf-8")
    True
    """
    page = render_session_report(rows, trajectories, thumbnails, **options)
    return write_atomic(Path(path), page.encode("utf-8"))


def render_session_report(
    rows,
    trajectories=None,
    thumbnails=None,
    *,
    title: str = "dedkit session",
    summary=None,
    max_thumbnails: int = MAX_THUMBNAILS,
) -> str:
    """One self-contained HTML page of a session: summary, plots, thumbnails, table.

    Parameters
    ----------
    rows : list of dict
        The session table's rows (the keys of ``session.csv``: movie, name, status,
        frames, dose_per_frame, total_dose, pixel_size, total_drift_px, early_drift_px,
        max_jump_px, frc_0143_A, frc_0143_nyquist, seconds, warnings, error), in session
        order. Missing keys, None and NaN are empty cells.
    trajectories : dict, optional
        ``{name: (n, 2) array-like}``: each movie's frame shifts (dx, dy), input pixels.
    thumbnails : dict, optional
        ``{name: PNG bytes}``: power-spectrum thumbnails (:func:`spectrum_thumbnail`).
    title : str
        The page's title and heading.
    summary : str or mapping, optional
        The caller's summary: a line of text, or ``{label: value}`` pairs (the command,
        movies per hour...), shown under the heading beside the counts of the rows.
    max_thumbnails : int
        At most this many thumbnails in the page (see the module's description).

    Returns
    -------
    str
        The page (UTF-8 text, write it with ``encoding="utf-8"``).

    Examples
    --------
    >>> rows = [
    ...     {"name": "m_0001", "status": "done", "frames": 40, "total_drift_px": 12.5},
    ...     {"name": "m_0002", "status": "failed", "error": "truncated: 12 of 40 frames"},
    ... ]
    >>> page = render_session_report(rows, {"m_0001": [[0, 0], [1, 2], [3, 3]]},
    ...                              title="Grid 3", summary={"Movies per hour": 212})
    >>> page.startswith("<!DOCTYPE html>"), "truncated: 12 of 40 frames" in page
    (True, True)
    >>> page.count('<tr class="failed"')
    1
    """
    rows = [dict(r) for r in rows]
    trajectories = {str(k): v for k, v in (trajectories or {}).items()}
    thumbnails = {str(k): v for k, v in (thumbnails or {}).items()}
    for i, row in enumerate(rows):
        row.setdefault("name", Path(str(row.get("movie", f"movie {i + 1}"))).stem)
        row["index"] = i + 1
        row["status"] = str(row.get("status") or "")
        failed = row["status"] == "failed"
        row["notes"] = str((row.get("error") if failed else row.get("warnings")) or "")

    body = [
        f"<header><h1>{_e(title)}</h1>{_summary_html(rows, summary)}</header>",
        _failures_html(rows),
        _plots_html(rows, trajectories),
        _gallery_html(rows, thumbnails, max_thumbnails),
        _table_html(rows),
    ]
    from dedkit import __version__

    body.append(
        f"<footer>Written by dedkit {_e(__version__)}. The table is also in "
        "<code>session.csv</code> and <code>session.json</code>; click a header to sort."
        "</footer>"
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="generator" content="dedkit {_e(__version__)}">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>\n<body>\n"
        + "\n".join(part for part in body if part)
        + f"\n<script>{_JS}</script>\n</body></html>\n"
    )


# ----------------------------------------------------------------------------- values


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _number(value) -> float | None:
    """A finite float, or None for a missing, non-numeric or non-finite value."""
    if value is None or isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _values(rows, key) -> np.ndarray:
    values = [_number(r.get(key)) for r in rows]
    return np.array([v for v in values if v is not None], float)


def _median(rows, key, fmt, unit) -> str | None:
    v = _values(rows, key)
    return f"{np.median(v):{fmt}} {unit}".strip() if v.size else None


# ---------------------------------------------------------------------------- summary


def _summary_html(rows, summary) -> str:
    counts = {}
    for r in rows:
        counts[r["status"] or "unknown"] = counts.get(r["status"] or "unknown", 0) + 1
    warned = sum(1 for r in rows if r["status"] != "failed" and r["notes"])
    tiles = [("Movies", str(len(rows)), "")]
    for status in ("done", "skipped", "failed"):
        tiles.append((status.capitalize(), str(counts.pop(status, 0)), status))
    tiles += [(s.capitalize(), str(n), "") for s, n in sorted(counts.items())]
    if warned:
        tiles.append(("With warnings", str(warned), "warn"))
    for key, label, fmt, unit in [
        ("total_drift_px", "Median total drift", ".2f", "px"),
        ("early_drift_px", "Median early drift", ".2f", "px"),
        ("frc_0143_A", "Median FRC 0.143", ".2f", "Å"),
        ("total_dose", "Median total dose", ".1f", "e/Å²"),
    ]:
        value = _median(rows, key, fmt, unit)
        if value is not None:
            tiles.append((label, value, ""))
    out = ['<div class="tiles">']
    for label, value, cls in tiles:
        muted = " zero" if value == "0" else ""
        out.append(
            f'<div class="tile {cls}{muted}"><div class="v">{_e(value)}</div>'
            f'<div class="l">{_e(label)}</div></div>'
        )
    out.append("</div>")
    if isinstance(summary, Mapping):
        items = "".join(
            f"<span><b>{_e(k)}</b> {_e(v)}</span>" for k, v in summary.items() if v is not None
        )
        out.insert(0, f'<p class="summary">{items}</p>')
    elif summary:
        out.insert(0, f'<p class="summary">{_e(summary)}</p>')
    return "".join(out)


def _failures_html(rows) -> str:
    failed = [r for r in rows if r["status"] == "failed"]
    if not failed:
        return ""
    items = "".join(
        f"<li><b>{_e(r['name'])}</b>: {_e(r['notes'] or 'failed')}</li>"
        for r in failed[:_MAX_LISTED_FAILURES]
    )
    more = len(failed) - _MAX_LISTED_FAILURES
    if more > 0:
        items += f"<li>… and {more} more (sort the table by Status)</li>"
    return (
        f'<section class="alert"><h2>{len(failed)} failed movie{"s" * (len(failed) != 1)}'
        f"</h2><ul>{items}</ul></section>"
    )


# ------------------------------------------------------------------------------ plots


def _matplotlib():
    """(Figure, FigureCanvasAgg), or None when matplotlib is not installed."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    return Figure, FigureCanvasAgg


def _png_uri(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _plots_html(rows, trajectories) -> str:
    mpl = _matplotlib()
    if mpl is None:
        return (
            '<section><h2>Plots</h2><p class="note">The plots need matplotlib, which is not '
            "installed here (<code>pip install matplotlib</code>); the table below has every "
            "value.</p></section>"
        )
    figures = [("Drift and resolution", _distribution_figure(mpl, rows))]
    if trajectories:
        figures.append(("Trajectories", _trajectory_figure(mpl, trajectories)))
    out = []
    for heading, fig in figures:
        out.append(
            f'<section><h2>{_e(heading)}</h2><img class="plot" alt="{_e(heading)}" '
            f'src="{_png_uri(fig)}"></section>'
        )
    return "\n".join(out)


def _distribution_figure(mpl, rows):
    Figure, FigureCanvasAgg = mpl
    panels = [
        ("total_drift_px", "Total drift", "path length (input pixels)", "C0"),
        ("early_drift_px", "Early drift", "path length (input pixels)", "C1"),
    ]
    if _values(rows, "frc_0143_A").size:
        panels.append(("frc_0143_A", "Even/odd FRC 0.143", "resolution (Å)", "C2"))
    else:
        panels.append(("frc_0143_nyquist", "Even/odd FRC 0.143", "fraction of Nyquist", "C2"))
    fig = Figure(figsize=(11, 3.1))
    FigureCanvasAgg(fig)
    for ax, (key, label, xlabel, colour) in zip(fig.subplots(1, 3), panels, strict=True):
        values = _values(rows, key)
        ax.set_title(f"{label} ({values.size} movies)", fontsize=10)
        ax.set_xlabel(xlabel)
        if not values.size:
            ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes,
                    color="0.5")  # fmt: skip
            ax.set_yticks([])
            continue
        bins = min(40, max(5, int(np.sqrt(values.size)) * 2))
        ax.hist(values, bins=bins, color=colour, alpha=0.8, edgecolor="white", linewidth=0.4)
        median = float(np.median(values))
        ax.axvline(median, color="0.2", ls="--", lw=1, label=f"median {median:.2f}")
        ax.legend(loc="best", fontsize=8, frameon=False)
        ax.set_ylabel("movies")
        ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def _trajectory_figure(mpl, trajectories):
    from matplotlib.collections import LineCollection

    Figure, FigureCanvasAgg = mpl
    paths, accumulated, totals = [], [], []
    for shifts in trajectories.values():
        s = np.asarray(shifts, float).reshape(-1, 2)
        s = s[np.isfinite(s).all(axis=1)]
        if len(s) < 1:
            continue
        s = s - s[0]
        steps = np.hypot(*np.diff(s, axis=0).T)
        run = np.concatenate([[0.0], np.cumsum(steps)])
        paths.append(s)
        accumulated.append(np.column_stack([np.arange(1, len(s) + 1), run]))
        totals.append(run[-1])
    fig = Figure(figsize=(11, 4.2))
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.25]})
    if not paths:
        for ax in (ax1, ax2):
            ax.text(0.5, 0.5, "no trajectories", ha="center", va="center",
                    transform=ax.transAxes, color="0.5")  # fmt: skip
        return fig
    totals = np.array(totals)
    # fainter lines as the movies get many, so that a thousand still show their density
    alpha = float(np.clip(6 / np.sqrt(len(paths)), 0.15, 0.9))
    norm_max = float(np.percentile(totals, 98)) or 1.0
    for ax, lines in ((ax1, paths), (ax2, accumulated)):
        collection = LineCollection(lines, array=totals, cmap="viridis", linewidths=0.8,
                                    alpha=alpha)  # fmt: skip
        collection.set_clim(0, norm_max)
        ax.add_collection(collection)
        ax.autoscale()
        ax.spines[["top", "right"]].set_visible(False)
    ax1.plot(0, 0, "o", mfc="none", mec="red", ms=7, label="frame 1")
    ax1.set_aspect("equal", adjustable="datalim")
    ax1.set_xlabel("dx (pixels)")
    ax1.set_ylabel("dy (pixels)")
    ax1.set_title(f"Trajectories from frame 1 ({len(paths)} movies)", fontsize=10)
    ax1.legend(loc="best", fontsize=8, frameon=False)
    ax2.set_xlabel("frame")
    ax2.set_ylabel("drift accumulated (pixels)")
    ax2.set_title("Drift accumulated frame by frame", fontsize=10)
    bar = fig.colorbar(collection, ax=ax2, label="total drift (pixels)", extend="max")
    bar.solids.set_alpha(1)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------- gallery


def _pick_thumbnails(rows, names, cap) -> list[tuple[str, list[str]]]:
    """Groups of (heading, names) of at most ``cap`` thumbnails in all (see the module)."""
    if len(names) <= cap:
        return [("", names)] if names else []
    by_name = {r["name"]: r for r in rows}

    def value(name, key):
        return _number(by_name.get(name, {}).get(key))

    chosen: set[str] = set()
    groups = []
    worst_drift = sorted(
        (n for n in names if value(n, "total_drift_px") is not None),
        key=lambda n: -value(n, "total_drift_px"),
    )[: cap // 3]
    chosen.update(worst_drift)
    # a lower fraction of Nyquist is a worse resolution, whatever each movie's pixel size
    worst_frc = [
        n
        for n in sorted(
            (n for n in names if value(n, "frc_0143_nyquist") is not None),
            key=lambda n: value(n, "frc_0143_nyquist"),
        )
        if n not in chosen
    ][: cap // 6]
    chosen.update(worst_frc)
    rest = [n for n in names if n not in chosen]
    take = cap - len(chosen)
    sample = [rest[i] for i in np.linspace(0, len(rest) - 1, take).round().astype(int)]
    sample = list(dict.fromkeys(sample))
    if worst_drift:
        groups.append((f"The {len(worst_drift)} largest total drifts", worst_drift))
    if worst_frc:
        groups.append((f"The {len(worst_frc)} lowest FRC 0.143 resolutions", worst_frc))
    groups.append(
        (f"An evenly spaced sample of {len(sample)} of the other {len(rest)} movies", sample)
    )
    return groups


def _thumbnail_uri(png: bytes) -> str:
    """The thumbnail reduced to at most THUMBNAIL_PIXELS, as a JPEG (or PNG) data URI."""
    import imagecodecs

    image = np.asarray(imagecodecs.png_decode(bytes(png)))
    if image.ndim == 3:
        image = image[..., :3].mean(axis=2)
    if image.ndim != 2 or not image.size:
        raise ValueError("not a 2D picture")
    factor = max(1, math.ceil(max(image.shape) / THUMBNAIL_PIXELS))
    if factor > 1:
        ny, nx = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
        image = image[:ny, :nx].reshape(ny // factor, factor, nx // factor, factor)
        image = image.mean(axis=(1, 3))
    if image.dtype != np.uint8:
        top = float(image.max()) or 1.0
        image = image * (255.0 / top) if image.dtype.kind == "f" or top > 255 else image
        image = np.clip(image, 0, 255).round().astype(np.uint8)
    try:
        # grey JPEG at quality 85 is a third of the PNG of a noisy spectrum
        return "data:image/jpeg;base64," + base64.b64encode(
            imagecodecs.jpeg8_encode(image, level=85)
        ).decode("ascii")
    except Exception:
        return "data:image/png;base64," + base64.b64encode(imagecodecs.png_encode(image)).decode(
            "ascii"
        )


def _gallery_html(rows, thumbnails, cap) -> str:
    cap = int(cap)
    if not thumbnails or cap <= 0:
        return ""
    order = {r["name"]: i for i, r in enumerate(rows)}
    names = sorted(thumbnails, key=lambda n: (order.get(n, len(order)), n))
    groups = _pick_thumbnails(rows, names, cap)
    by_name = {r["name"]: r for r in rows}
    shown = sum(len(g) for _, g in groups)
    out = [
        "<section><h2>Power spectra</h2>",
        f'<p class="note">Log power spectra of the aligned sums, zero frequency at the '
        f"centre and Nyquist at the edges: {shown} of {len(names)} movies"
        + (f" (at most {cap} in a page)." if shown < len(names) else ".")
        + "</p>",
    ]
    unreadable = 0
    for heading, group in groups:
        if heading:
            out.append(f"<h3>{_e(heading)}</h3>")
        out.append('<div class="gallery">')
        for name in group:
            row = by_name.get(name, {})
            details = [name]
            for key, fmt, unit in [("total_drift_px", ".2f", "px drift"),
                                   ("frc_0143_A", ".2f", "Å")]:  # fmt: skip
                v = _number(row.get(key))
                if v is not None:
                    details.append(f"{v:{fmt}} {unit}")
            try:
                picture = f'<img alt="{_e(name)}" src="{_thumbnail_uri(thumbnails[name])}">'
            except Exception:
                unreadable += 1
                picture = '<div class="missing">unreadable</div>'
            cls = " failed" if row.get("status") == "failed" else ""
            out.append(
                f'<figure class="thumb{cls}" title="{_e(" · ".join(details))}">{picture}'
                f"<figcaption><b>{_e(name)}</b><br>{_e(' · '.join(details[1:]))}"
                "</figcaption></figure>"
            )
        out.append("</div>")
    if unreadable:
        out.append(f'<p class="note warn">{unreadable} thumbnail(s) could not be decoded.</p>')
    out.append("</section>")
    return "".join(out)


# ------------------------------------------------------------------------------ table


def _cell(row, key, fmt) -> str:
    if fmt is None:
        text = str(row.get(key) if row.get(key) is not None else "")
        if key == "name":
            title = row.get("movie") or text
            return f'<td class="t" title="{_e(title)}">{_e(text)}</td>'
        if key == "status":
            return f'<td class="t"><span class="pill {_e(text)}">{_e(text)}</span></td>'
        if key == "notes":
            cls = "err" if row["status"] == "failed" else ("warn" if text else "")
            return f'<td class="t notes {cls}" title="{_e(text)}">{_e(text)}</td>'
        return f"<td>{_e(text)}</td>"
    value = _number(row.get(key))
    if value is None:
        return '<td data-v="" class="none">–</td>'
    shown = f"{int(round(value)):d}" if fmt == "d" else f"{value:{fmt}}"
    # 7 significant digits sort as the values do, in half the bytes of repr
    return f'<td data-v="{value:.7g}">{shown}</td>'


def _table_html(rows) -> str:
    heads = []
    for key, label, unit, fmt in COLUMNS:
        kind = "text" if fmt is None else "num"
        unit_html = f"<small>{_e(unit)}</small>" if unit else ""
        heads.append(
            f'<th data-type="{kind}" data-key="{key}" tabindex="0" '
            f'title="Sort by {_e(label)} {_e(unit)}">{_e(label)}{unit_html}</th>'
        )
    body = []
    for row in rows:
        cls = {"failed": "failed", "skipped": "skipped"}.get(row["status"], "")
        cls = cls or ("warned" if row["notes"] else "")
        cells = "".join(_cell(row, key, fmt) for key, _, _, fmt in COLUMNS)
        body.append(f'<tr class="{cls}" data-i="{row["index"]}">{cells}</tr>')
    if not rows:
        body.append(f'<tr><td colspan="{len(COLUMNS)}" class="none">No movies.</td></tr>')
    return (
        '<section><h2>Movies</h2><div class="tools"><input id="filter" type="search" '
        'placeholder="Filter rows (name, status, notes…)" aria-label="Filter rows">'
        f'<span id="shown">{len(rows)} movies</span></div>'
        '<div class="scroll"><table id="movies"><thead><tr>'
        + "".join(heads)
        + "</tr></thead><tbody>\n"
        + "\n".join(body)
        + "\n</tbody></table></div></section>"
    )


_CSS = """
:root{--fg:#1d232a;--muted:#66707a;--line:#dde1e6;--bg:#fff;--head:#f3f5f7;
--red:#b42318;--redbg:#fdecea;--amber:#8a5a00;--amberbg:#fff4dc;--green:#1a7f37;
--blue:#175cd3}
*{box-sizing:border-box}
body{margin:0 auto;max-width:1400px;padding:20px 28px 40px;color:var(--fg);background:var(--bg);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
h1{font-size:22px;margin:0 0 6px}h2{font-size:17px;margin:26px 0 8px;
border-bottom:1px solid var(--line);padding-bottom:4px}h3{font-size:14px;margin:14px 0 6px;
color:var(--muted);font-weight:600}
code{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.summary{margin:0 0 10px;color:var(--muted)}.summary span{margin-right:18px}
.summary b{color:var(--fg);font-weight:600}
.tiles{display:flex;flex-wrap:wrap;gap:8px}
.tile{border:1px solid var(--line);border-radius:6px;padding:6px 12px;min-width:96px}
.tile .v{font-size:19px;font-weight:600;font-variant-numeric:tabular-nums}
.tile .l{font-size:12px;color:var(--muted)}
.tile.done .v{color:var(--green)}.tile.failed{border-color:#f3b3ad;background:var(--redbg)}
.tile.failed .v{color:var(--red)}.tile.warn{border-color:#f0d08a;background:var(--amberbg)}
.tile.warn .v{color:var(--amber)}.tile.zero{background:none;border-color:var(--line)}
.tile.zero .v{color:var(--muted)}
.alert{border:1px solid #f3b3ad;background:var(--redbg);border-radius:6px;padding:2px 14px;
margin-top:16px}.alert h2{border:0;color:var(--red);margin:10px 0 4px;font-size:15px}
.alert ul{margin:0 0 10px;padding-left:18px}.alert li{margin:1px 0}
.note{color:var(--muted);margin:4px 0 8px}.note.warn{color:var(--amber)}
img.plot{max-width:100%;height:auto;display:block}
.gallery{display:flex;flex-wrap:wrap;gap:10px}
.thumb{margin:0;width:132px;font-size:11px;color:var(--muted)}
.thumb img,.thumb .missing{width:128px;height:128px;display:block;border:2px solid var(--line);
border-radius:3px;background:#000}.thumb.failed img{border-color:var(--red)}
.thumb .missing{color:#ccc;text-align:center;line-height:124px}
.thumb figcaption{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.thumb b{color:var(--fg);font-weight:600}
.tools{display:flex;gap:12px;align-items:center;margin:0 0 8px}
#filter{font:inherit;padding:4px 8px;border:1px solid var(--line);border-radius:4px;width:320px}
#shown{color:var(--muted);font-size:13px}
.scroll{max-height:80vh;overflow:auto;border:1px solid var(--line);border-radius:4px}
table{border-collapse:collapse;width:100%;font-size:13px;font-variant-numeric:tabular-nums}
th{position:sticky;top:0;background:var(--head);text-align:right;padding:5px 8px;
border-bottom:1px solid var(--line);cursor:pointer;user-select:none;white-space:nowrap;
font-weight:600;vertical-align:bottom}
th small{display:block;font-weight:400;color:var(--muted);font-size:11px}
th[data-type=text]{text-align:left}th:hover{background:#e8ecf0}
th[aria-sort=ascending]::after{content:" ▲";font-size:10px;color:var(--blue)}
th[aria-sort=descending]::after{content:" ▼";font-size:10px;color:var(--blue)}
td{padding:3px 8px;text-align:right;border-bottom:1px solid #eef0f2;white-space:nowrap}
td.t{text-align:left}td.none{color:#b0b6bc}
td.notes{max-width:380px;overflow:hidden;text-overflow:ellipsis}
td.notes.warn{color:var(--amber)}td.notes.err{color:var(--red)}
tbody tr:nth-child(even){background:#fafbfc}tbody tr:hover{background:#eef4ff}
tr.failed,tr.failed:nth-child(even){background:var(--redbg)}tr.failed td{color:var(--red)}
tr.warned td.notes{background:var(--amberbg)}tr.skipped td{color:var(--muted)}
.pill{display:inline-block;padding:0 7px;border-radius:9px;font-size:12px;background:#eef0f2}
.pill.done{background:#dcf3e3;color:var(--green)}.pill.failed{background:#f9d2ce;
color:var(--red)}.pill.skipped{background:#eef0f2;color:var(--muted)}
footer{margin-top:24px;color:var(--muted);font-size:12px}
"""

# Sorting: numbers by their data-v value, text with a numeric-aware collation (m_2 before
# m_10); empty cells last in both directions; ties keep the session order.
_JS = """
(function () {
  var table = document.getElementById('movies');
  if (!table) return;
  var body = table.tBodies[0], heads = table.tHead.rows[0].cells;
  var collator = new Intl.Collator(undefined, {numeric: true, sensitivity: 'base'});
  function key(cell, numeric) {
    if (numeric) {
      var v = cell.getAttribute('data-v');
      return v === null || v === '' ? null : parseFloat(v);
    }
    var t = cell.textContent.trim();
    return t === '' ? null : t;
  }
  function sortBy(col) {
    var th = heads[col], numeric = th.getAttribute('data-type') === 'num';
    var dir = th.getAttribute('aria-sort') === 'ascending' ? -1 : 1;
    for (var h = 0; h < heads.length; h++) heads[h].removeAttribute('aria-sort');
    th.setAttribute('aria-sort', dir > 0 ? 'ascending' : 'descending');
    var rows = Array.prototype.slice.call(body.rows).map(function (r) {
      return {row: r, k: key(r.cells[col], numeric), i: +r.getAttribute('data-i')};
    });
    rows.sort(function (a, b) {
      if (a.k === null || b.k === null) {
        if (a.k === b.k) return a.i - b.i;
        return a.k === null ? 1 : -1;
      }
      var c = numeric ? a.k - b.k : collator.compare(a.k, b.k);
      return c ? c * dir : a.i - b.i;
    });
    var fragment = document.createDocumentFragment();
    rows.forEach(function (r) { fragment.appendChild(r.row); });
    body.appendChild(fragment);
  }
  Array.prototype.forEach.call(heads, function (th, col) {
    th.addEventListener('click', function () { sortBy(col); });
    th.addEventListener('keydown', function (e) {
      if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); sortBy(col); }
    });
  });
  var filter = document.getElementById('filter'), shown = document.getElementById('shown');
  var total = body.rows.length;
  filter.addEventListener('input', function () {
    var q = filter.value.trim().toLowerCase(), n = 0;
    Array.prototype.forEach.call(body.rows, function (r) {
      var hit = !q || r.textContent.toLowerCase().indexOf(q) >= 0;
      r.style.display = hit ? '' : 'none';
      n += hit;
    });
    shown.textContent = q ? n + ' of ' + total + ' movies' : total + ' movies';
  });
})();
"""

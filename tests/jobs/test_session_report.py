"""report.html (issue 16): a self-contained page, its thumbnail cap, and a real headless
browser that renders it, screenshots it and sorts its table."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import imagecodecs
import numpy as np
import pytest

from dedkit.jobs.session_report import (
    COLUMNS,
    MAX_THUMBNAILS,
    render_session_report,
    spectrum_thumbnail,
    write_session_report,
)
from dedkit.metrics import power_spectrum_thumbnail

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def _session(n, *, seed=0, failed_every=7, thumbnail_size=64):
    """Rows, trajectories and thumbnails of ``n`` made-up movies (a few failed, one
    without a drift value, one with a warning)."""
    rng = np.random.default_rng(seed)
    thumbs = [spectrum_thumbnail(rng.normal(size=(96, 96)), size=thumbnail_size) for _ in range(3)]
    rows, trajectories, thumbnails = [], {}, {}
    for i in range(n):
        name = f"m_{i + 1}"  # m_2 before m_10 when sorted as a person would
        failed = i % failed_every == 3
        shifts = np.cumsum(rng.normal(scale=0.5, size=(12, 2)), axis=0)
        steps = np.hypot(*np.diff(shifts, axis=0).T)
        row = {
            "movie": f"Frames/{name}.tif",
            "name": name,
            "status": "failed" if failed else "done",
            "frames": None if failed else 12,
            "dose_per_frame": None if failed else 1.5,
            "total_dose": None if failed else 18.0,
            "pixel_size": None if failed else 1.1,
            "total_drift_px": None if failed else float(steps.sum()),
            "early_drift_px": None if failed else float(steps[:3].sum()),
            "max_jump_px": None if failed else float(steps.max()),
            "frc_0143_A": None if failed else float(rng.uniform(2.3, 8)),
            "frc_0143_nyquist": None,
            "seconds": None if failed else 3.0,
            "warnings": "dose unknown" if i == 1 else "",
            "error": f"{name}.tif: truncated: 3 of 12 frames" if failed else "",
        }
        if row["frc_0143_A"] is not None:
            row["frc_0143_nyquist"] = 2 * 1.1 / row["frc_0143_A"]
            trajectories[name] = shifts
            thumbnails[name] = thumbs[i % 3]
        rows.append(row)
    rows[2]["total_drift_px"] = float("nan")  # a missing value that is not None
    return rows, trajectories, thumbnails


def _sources(page):
    return re.findall(r'(?:src|href)="([^"]*)"', page)


def test_page_is_self_contained_and_complete():
    rows, trajectories, thumbnails = _session(12)
    page = render_session_report(
        rows, trajectories, thumbnails, title="Grid <3>", summary={"Movies per hour": 99}
    )
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    # nothing to fetch: every picture inline, no link, no remote script or style sheet
    sources = _sources(page)
    assert sources and all(s.startswith("data:image/") for s in sources)
    assert not re.search(r"https?://|<link|<script src|@import|url\(", page)
    assert "<title>Grid &lt;3&gt;</title>" in page and "Movies per hour" in page
    # two plots (distributions, trajectories) and one thumbnail per movie that has one
    assert page.count('class="plot"') == 2
    assert page.count('<figure class="thumb') == len(thumbnails)
    # the table: one row per movie in session order, failed rows marked, errors shown
    body = page[page.index("<tbody>") : page.index("</tbody>")]
    assert re.findall(r'data-i="(\d+)"', body) == [str(i) for i in range(1, 13)]
    failed = [r for r in rows if r["status"] == "failed"]
    assert body.count('<tr class="failed"') == len(failed) == 2
    assert all(r["error"] in page for r in failed)
    assert page.count('<tr class="warned"') == 1 and "dose unknown" in body
    headers = re.findall(r'<th data-type="(\w+)" data-key="(\w+)"', page)
    assert [k for _, k in headers] == [c[0] for c in COLUMNS]
    # None and NaN are empty cells (sorted last by the script), never "nan" or "None"
    assert "nan" not in body.lower() and "None" not in body
    assert body.count('data-v=""') > 0


def test_names_and_errors_are_escaped():
    rows = [{"name": "<b>x</b>", "status": "failed", "error": "bad <script>alert(1)</script>"}]
    page = render_session_report(rows)
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)" in page
    assert "<b>x</b>" not in page.replace("<b>&lt;b&gt;", "")


def test_thumbnails_are_capped_worst_first_for_a_thousand_movies():
    rows, trajectories, thumbnails = _session(1000, failed_every=50, thumbnail_size=256)
    page = render_session_report(rows, trajectories, thumbnails)
    assert page.count('<figure class="thumb') == MAX_THUMBNAILS
    gallery = page[page.index("Power spectra") : page.index("<table")]
    drifts = {r["name"]: r["total_drift_px"] for r in rows if r["total_drift_px"] is not None}
    drifts = {k: v for k, v in drifts.items() if np.isfinite(v)}
    worst = max(drifts, key=drifts.get)
    assert f"<b>{worst}</b>" in gallery and "largest total drifts" in gallery
    lowest = min(
        (r for r in rows if r["frc_0143_nyquist"] is not None),
        key=lambda r: r["frc_0143_nyquist"],
    )
    assert f"<b>{lowest['name']}</b>" in gallery
    assert f"of {len(thumbnails)} movies" in gallery
    # thumbnails are reduced to 128 pixels in the page
    first = re.search(
        r'<figure class="thumb[^>]*><img alt="[^"]*" src="data:[^;]+;base64,([^"]+)"', gallery
    )
    assert first
    import base64

    assert imagecodecs.imread(base64.b64decode(first.group(1))).shape == (128, 128)
    # a thousand movies stay under 2 MB (about 1.2 MB here: see the module's description)
    assert len(page.encode("utf-8")) < 2_000_000


def test_thumbnail_cap_is_an_option():
    rows, trajectories, thumbnails = _session(30)
    page = render_session_report(rows, trajectories, thumbnails, max_thumbnails=6)
    assert page.count('<figure class="thumb') == 6 and "at most 6 in a page" in page
    page = render_session_report(rows, trajectories, thumbnails, max_thumbnails=0)
    assert "<figure" not in page and "Power spectra" not in page


def test_without_matplotlib_the_page_still_renders(monkeypatch):
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    rows, trajectories, thumbnails = _session(5)
    page = render_session_report(rows, trajectories, thumbnails)
    assert "matplotlib, which is not installed" in page
    assert 'class="plot"' not in page
    assert page.count("<tr ") == 5 and page.count('<figure class="thumb') == len(thumbnails)


def test_unreadable_thumbnail_is_a_placeholder():
    rows, trajectories, thumbnails = _session(4)
    thumbnails["m_1"] = b"not a png"
    page = render_session_report(rows, trajectories, thumbnails)
    assert page.count('class="missing"') == 1 and "could not be decoded" in page


def test_empty_session():
    page = render_session_report([], title="Nothing yet")
    assert "No movies." in page and "Nothing yet" in page


def test_spectrum_thumbnail_png_is_the_thumbnail_array():
    image = np.random.default_rng(3).normal(size=(200, 300))
    png = spectrum_thumbnail(image, size=64)
    assert np.array_equal(imagecodecs.png_decode(png), power_spectrum_thumbnail(image, 64))


def test_write_session_report(tmp_path):
    rows, trajectories, thumbnails = _session(3)
    path = write_session_report(tmp_path / "report.html", rows, trajectories, thumbnails)
    assert path.read_text(encoding="utf-8").count("<tr ") == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


# ------------------------------------------------------------------- headless browser


def _chrome(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver")
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()) and not (
        shutil.which("chromium") and shutil.which("chromedriver")
    ):
        pytest.skip("chromium and chromedriver are not installed (apt-get install chromium "
                    "chromium-driver)")  # fmt: skip
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    for flag in [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--window-size=1280,1600",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ]:  # fmt: skip
        options.add_argument(flag)
    # a driver path given: Selenium Manager (which would download drivers) is not run
    driver_path = CHROMEDRIVER if Path(CHROMEDRIVER).exists() else shutil.which("chromedriver")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(60)
    return driver


def _column_values(driver, key):
    """The cells of column ``key`` in the table's current order, as the page shows them."""
    index = [c[0] for c in COLUMNS].index(key)
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#movies tbody tr'))"
        f".map(r => r.cells[{index}].getAttribute('data-v') ?? r.cells[{index}].textContent)"
    )


@pytest.mark.slow
def test_report_renders_and_sorts_in_a_headless_browser(tmp_path):
    rows, trajectories, thumbnails = _session(25)
    path = write_session_report(
        tmp_path / "report.html", rows, trajectories, thumbnails, title="Browser test"
    )
    driver = _chrome(tmp_path)
    try:
        driver.get(path.resolve().as_uri())
        assert driver.title == "Browser test"
        # every inline picture decoded (a broken data URI has naturalWidth 0)
        widths = driver.execute_script(
            "return Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0)"
        )
        assert len(widths) == 2 + len(thumbnails) and min(widths) > 0
        shot = tmp_path / "report.png"
        assert driver.save_screenshot(str(shot))
        pixels = imagecodecs.imread(shot.read_bytes())[..., :3].astype(int)
        assert pixels.shape[0] > 500 and pixels.shape[1] > 800
        # not blank: many colours, and the failed-movies box in its red tint is there
        assert pixels.std() > 20
        assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200
        tint = np.all(np.abs(pixels - [0xFD, 0xEC, 0xEA]) <= 2, axis=-1)
        assert tint.sum() > 2000

        def numbers(key):
            return [None if v in ("", None) else float(v) for v in _column_values(driver, key)]

        header = driver.find_element("css selector", 'th[data-key="total_drift_px"]')
        before = numbers("total_drift_px")
        header.click()
        after = numbers("total_drift_px")
        present = [v for v in after if v is not None]
        assert after != before
        assert present == sorted(present) and after[len(present) :] == [None] * (
            len(after) - len(present)
        )
        assert header.get_attribute("aria-sort") == "ascending"
        header.click()
        descending = numbers("total_drift_px")
        present = [v for v in descending if v is not None]
        assert present == sorted(present, reverse=True) and descending[-1] is None
        # text sorts as a person reads it: m_2 before m_10
        driver.find_element("css selector", 'th[data-key="name"]').click()
        names = _column_values(driver, "name")
        assert names[:3] == ["m_1", "m_2", "m_3"] and names.index("m_2") < names.index("m_10")
        # the filter keeps the failed rows only
        driver.find_element("id", "filter").send_keys("failed")
        visible = driver.execute_script(
            "return Array.from(document.querySelectorAll('#movies tbody tr'))"
            ".filter(r => r.style.display !== 'none').length"
        )
        assert visible == sum(r["status"] == "failed" for r in rows)
    finally:
        driver.quit()

import math

import numpy as np
import pytest

from dedkit.errors import DedkitError
from dedkit.frames.reduce import (
    FILTERS,
    REDUCTIONS,
    antialias_reduce,
    bin_image,
    filter_function,
    reduce_image,
    reduced_shape,
    weight_table,
)

# ----- an independent reference: IMOD's zoomdown written out pixel by pixel ---------------


def imod_filter(name, x):
    """IMOD's filter functions, one scalar at a time (zoomdown.c)."""
    if name == "box":
        return 1.0 if -0.5 <= x < 0.5 else 0.0
    if name == "blackman":
        return 0.42 + 0.5 * math.cos(math.pi * x) + 0.08 * math.cos(2 * math.pi * x)
    if name == "triangle":
        return 0.0 if abs(x) >= 1 else 1 - abs(x)
    if name == "mitchell":
        b = c = 1 / 3
        t = abs(x)
        if t < 1:
            return ((12 - 9 * b - 6 * c) * t**3 + (-18 + 12 * b + 6 * c) * t**2 + 6 - 2 * b) / 6
        if t < 2:
            return (
                (-b - 6 * c) * t**3
                + (6 * b + 30 * c) * t**2
                + (-12 * b - 48 * c) * t
                + 8 * b
                + 24 * c
            ) / 6
        return 0.0
    a = {"lanczos2": 2.0, "lanczos3": 3.0}[name]
    if abs(x) > a:
        return 0.0
    if abs(x) < 1e-6:
        return 1.0
    return a * math.sin(math.pi * x) * math.sin(math.pi * x / a) / (math.pi**2 * x * x)


SUPPORT = {"box": 0.5, "blackman": 1, "triangle": 1, "mitchell": 2, "lanczos2": 2, "lanczos3": 3}


def reference_weights(n, s, name):
    """Per output pixel: {input index: weight}, from the rule in formats.md."""
    nb = n // s
    offset = (n - nb * s) / 2
    rows = []
    for b in range(nb):
        c = offset + (b + 0.5) * s
        i0 = max(0, int(c - SUPPORT[name] * s + 0.5))
        i1 = min(n, int(c + SUPPORT[name] * s + 0.5))
        w = {i: imod_filter(name, (i + 0.5 - c) / s) for i in range(i0, i1)}
        total = sum(w.values())
        rows.append({i: v / total for i, v in w.items()})
    return rows


def reference_reduce(image, s, name):
    wy = reference_weights(image.shape[0], s, name)
    wx = reference_weights(image.shape[1], s, name)
    out = np.zeros((len(wy), len(wx)))
    for by, ry in enumerate(wy):
        for bx, rx in enumerate(wx):
            out[by, bx] = sum(
                vy * vx * float(image[iy, ix]) for iy, vy in ry.items() for ix, vx in rx.items()
            )
    return out


# ----- filters and weight tables ------------------------------------------------------------


def test_filter_values():
    lanczos3, supp = filter_function("lanczos3")
    assert supp == 3
    assert lanczos3(np.array([0.0]))[0] == 1.0
    assert np.allclose(lanczos3(np.array([1.0, 2.0, -1.0, 3.5])), 0.0, atol=1e-15)
    mitchell, _ = filter_function("mitchell")
    # Mitchell-Netravali B = C = 1/3: f(0) = 8/9, f(1) = 1/18, 0 from 2 on
    assert np.allclose(mitchell(np.array([0.0, 1.0, -1.0, 2.0])), [8 / 9, 1 / 18, 1 / 18, 0])
    box, _ = filter_function("box")
    assert list(box(np.array([-0.5, 0.49, 0.5]))) == [1.0, 1.0, 0.0]
    blackman, _ = filter_function("blackman")
    assert abs(blackman(np.array([1.0]))[0]) < 1e-15
    with pytest.raises(DedkitError, match="unknown filter"):
        filter_function("gauss")


@pytest.mark.parametrize("name", list(FILTERS))
def test_weight_tables_follow_imod_rule(name):
    for n, s in [(40, 2), (41, 3), (37, 4), (12, 1)]:
        table = weight_table(n, s, name)
        ref = reference_weights(n, s, name)
        assert len(ref) == len(table.start) == n // s
        for b, row in enumerate(ref):
            got = {
                int(table.start[b]) + k: float(table.weights[b, k]) for k in range(table.count[b])
            }
            assert set(got) == set(row), (n, s, b)
            assert np.allclose([got[i] for i in row], list(row.values()), atol=1e-7)
            assert abs(sum(got.values()) - 1) < 1e-6


def test_interior_weights_are_symmetric_for_lanczos3_by_2():
    t = weight_table(64, 2, "lanczos3")
    b = 10
    w = t.weights[b, : t.count[b]]
    assert t.count[b] == 12 and t.start[b] == 2 * b - 5
    assert np.allclose(w, w[::-1], atol=1e-7)


def test_identity_at_factor_1():
    img = np.random.default_rng(0).random((9, 7)).astype(np.float32)
    # the interpolating filters are 0 at every other integer; Mitchell (B = 1/3) is not
    for name in ("box", "blackman", "triangle", "lanczos2", "lanczos3"):
        assert np.allclose(antialias_reduce(img, 1, name), img, atol=1e-6), name
    assert not np.allclose(antialias_reduce(img, 1, "mitchell"), img, atol=1e-3)


# ----- reduction ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FILTERS))
def test_matches_reference_on_odd_non_square_image(name):
    img = np.random.default_rng(1).random((23, 31)) * 100
    for s in (2, 3, 4):
        got = antialias_reduce(img.astype(np.float32), s, name, values="mean")
        ref = reference_reduce(img.astype(np.float32), s, name)
        assert got.dtype == np.float32 and got.shape == ref.shape
        assert np.allclose(got, ref, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name", REDUCTIONS)
def test_constant_image_keeps_its_value_to_the_edges(name):
    img = np.full((30, 45), 3.0)
    for s in (2, 3, 4):
        mean = reduce_image(img, s, name, values="mean")
        total = reduce_image(img, s, name)
        assert np.allclose(mean, 3.0, rtol=1e-6)
        assert np.allclose(total, 3.0 * s * s, rtol=1e-6)


def test_box_filter_is_mean_binning_when_the_factor_divides():
    img = np.random.default_rng(2).integers(0, 16, (24, 36)).astype(np.uint8)
    for s in (2, 3, 4):
        assert np.allclose(antialias_reduce(img, s, "box"), bin_image(img, s), atol=1e-4)


def test_binning_sums_centred_blocks():
    img = np.arange(5 * 7, dtype=np.uint16).reshape(5, 7)
    out = bin_image(img, 2)
    # 5 -> 2 rows starting at round(0.5) = 1; 7 -> 3 columns starting at round(0.5) = 1
    expect = np.array(
        [[img[1:3, 1 + 2 * j : 3 + 2 * j].sum() for j in range(3)] for _ in range(1)]
        + [[img[3:5, 1 + 2 * j : 3 + 2 * j].sum() for j in range(3)]]
    )
    assert out.dtype == np.float32
    assert np.array_equal(out, expect)
    assert np.allclose(bin_image(img, 2, values="mean"), expect / 4)


def test_integer_types_give_the_float_result():
    rng = np.random.default_rng(3)
    base = rng.integers(0, 200, (20, 26))
    ref = antialias_reduce(base.astype(np.float32), 2)
    for dtype in (np.uint8, np.int16, np.uint16, np.float64, np.int32, bool):
        img = (base > 100) if dtype is bool else base.astype(dtype)
        want = antialias_reduce((base > 100).astype(np.float32), 2) if dtype is bool else ref
        assert np.allclose(antialias_reduce(img, 2), want, rtol=1e-5, atol=1e-3)


def amplitude(rows, freq):
    """Amplitude of a sinusoid of ``freq`` cycles/pixel in every row (whole periods)."""
    b = np.arange(rows.shape[1])
    c = (rows * np.cos(2 * np.pi * freq * b)).mean(axis=1)
    s = (rows * np.sin(2 * np.pi * freq * b)).mean(axis=1)
    return 2 * np.hypot(c, s)


def test_antialiasing_suppresses_what_binning_aliases():
    # a cosine at 0.375 cycles/pixel lies beyond the Nyquist (0.25) of the reduced image;
    # reduced by 2 it appears at 0.75 cycles per output pixel (an alias of 0.25)
    x = np.arange(256)
    img = np.tile(np.cos(2 * np.pi * 0.375 * x), (32, 1))
    binned = bin_image(img, 2, values="mean")[:, 8:-8]
    lanczos = antialias_reduce(img, 2, values="mean")[:, 8:-8]
    # binning passes |cos(pi 0.375)| = 0.383 of it; Lanczos-3 a few percent
    assert np.allclose(amplitude(binned, 0.75), math.cos(math.pi * 0.375), atol=1e-4)
    assert np.all(amplitude(lanczos, 0.75) < 0.05)
    # well inside the band both keep a low frequency (0.0625 -> 0.125 per output pixel)
    low = np.tile(np.cos(2 * np.pi * 0.0625 * x), (32, 1))
    assert np.all(amplitude(antialias_reduce(low, 2, values="mean")[:, 8:-8], 0.125) > 0.97)


def test_out_argument_and_shape():
    img = np.ones((10, 12), np.float32)
    out = np.empty((5, 6), np.float32)
    assert antialias_reduce(img, 2, out=out) is out
    assert reduced_shape((4092, 5760), 2) == (2046, 2880)
    with pytest.raises(ValueError):
        antialias_reduce(img, 2, out=np.empty((5, 5), np.float32))


@pytest.mark.parametrize(
    "image, factor, filter, message",
    [
        (np.ones((8, 8)), 0, "lanczos3", "at least 1"),
        (np.ones((8, 8)), 2.5, "lanczos3", "integer"),
        (np.ones((8, 8)), True, "lanczos3", "integer"),
        (np.ones((4, 8, 8)), 2, "lanczos3", "2D"),
        (np.ones((8, 8), complex), 2, "lanczos3", "type"),
        (np.ones((3, 8)), 4, "lanczos3", "smaller than"),
        (np.ones((8, 8)), 2, "cubic", "unknown filter"),
        (np.ones((3, 8)), 4, "bin", "smaller than"),
    ],
)
def test_bad_input(image, factor, filter, message):
    with pytest.raises(DedkitError, match=message):
        reduce_image(image, factor, filter)


def test_bad_values_and_float_factor():
    with pytest.raises(DedkitError, match="values"):
        reduce_image(np.ones((8, 8)), 2, values="median")
    assert reduce_image(np.ones((8, 8)), 2.0).shape == (4, 4)

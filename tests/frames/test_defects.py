"""IMOD-compatible defect correction: each rule on tiny frames, checked by hand."""

import numpy as np
import pytest

from dedkit.errors import DedkitError
from dedkit.frames.defects import (
    DefectCorrector,
    correct_defects,
    defect_map,
    prepare_defects,
)
from dedkit.frames.rotflip import inverse_rotflip, rotflip, rotflip_shape
from dedkit.records.defects import DefectList, PartialBadLine, UsableArea


def noisy(ny, nx, seed=0, dtype=np.float32):
    """A frame whose corrections cannot come out right by accident."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 1000, size=(ny, nx)).astype(dtype)


def row_of(ny, file_y):
    """Array row (row 0 at the bottom) of a row counted from the top in the file."""
    return ny - 1 - file_y


def changed(before, after):
    return set(zip(*np.nonzero(before != after), strict=True))


def test_lone_pixel_gets_mean_of_4_neighbours_at_flipped_row():
    img = noisy(6, 8)
    out = correct_defects(img, DefectList(8, 6, bad_pixels=[(3, 1)]))
    r = row_of(6, 1)
    assert r == 4
    expected = (img[r, 2] + img[r, 4] + img[r - 1, 3] + img[r + 1, 3]) / 4
    assert out[r, 3] == pytest.approx(expected)
    assert changed(img, out) <= {(r, 3)}


def test_lone_pixel_on_frame_edge_averages_the_neighbours_that_exist():
    img = noisy(6, 8)
    out = correct_defects(img, DefectList(8, 6, bad_pixels=[(0, 0)]))
    assert out[5, 0] == pytest.approx((img[5, 1] + img[4, 0]) / 2)


def test_super_resolution_block_gets_mean_of_16_pixels_beside_it():
    img = noisy(12, 12)
    d = DefectList(12, 12, was_scaled=1, k2_type=1, bad_pixels=[(4, 4)])
    out = correct_defects(img, d)
    # A 2x2 block named by its top-left corner in the file has its lower-left corner at
    # row 12 - 2 - 4 = 6 in the frame.
    y, x = 6, 4
    ring = np.concatenate(
        [
            img[y : y + 2, x - 2 : x].ravel(),
            img[y : y + 2, x + 2 : x + 4].ravel(),
            img[y - 2 : y, x : x + 2].ravel(),
            img[y + 2 : y + 4, x : x + 2].ravel(),
        ]
    )
    assert len(ring) == 16
    assert np.allclose(out[y : y + 2, x : x + 2], ring.mean())
    assert changed(img, out) == {(6, 4), (6, 5), (7, 4), (7, 5)}


def test_touching_pixels_get_the_image_mean():
    img = noisy(8, 10)
    d = DefectList(10, 8, bad_pixels=[(3, 2), (4, 2), (7, 6)])
    out = correct_defects(img, d)
    r = row_of(8, 2)
    # A frame this small is sampled completely; the mean is taken before any change.
    mean = np.float32(img.astype(np.float64).mean())
    assert out[r, 3] == out[r, 4] == mean
    lone = row_of(8, 6)
    assert out[lone, 7] == pytest.approx(
        (img[lone, 6] + img[lone, 8] + img[lone - 1, 7] + img[lone + 1, 7]) / 4
    )


def test_pixel_beside_a_bad_column_gets_the_mean():
    img = noisy(8, 10)
    out = correct_defects(img, DefectList(10, 8, bad_pixels=[(5, 3)], bad_columns=[4]))
    assert out[row_of(8, 3), 5] == np.float32(img.astype(np.float64).mean())


def test_band_of_one_column_is_mean_of_neighbouring_columns():
    img = noisy(8, 10)
    out = correct_defects(img, DefectList(10, 8, bad_columns=[4]))
    assert np.allclose(out[:, 4], (img[:, 3] + img[:, 5]) / 2)
    assert changed(img, out) <= {(r, 4) for r in range(8)}


def test_band_of_two_columns_blends_linearly():
    img = noisy(8, 10)
    out = correct_defects(img, DefectList(10, 8, bad_columns=[4, 5]))
    left, right = img[:, 3], img[:, 6]
    assert np.allclose(out[:, 4], left * 2 / 3 + right / 3)
    assert np.allclose(out[:, 5], left / 3 + right * 2 / 3)


def test_columns_merge_into_a_band_only_when_listed_in_increasing_order():
    # IMOD extends a band only by the column right after it, so "5 4" is two bands.
    bands = prepare_defects(DefectList(10, 8, bad_columns=[5, 4, 7, 8, 9]), (8, 10))
    np.testing.assert_array_equal(bands.geometry.column_bands, [[5, 1], [4, 1], [7, 3]])


def test_band_of_four_columns_blends_three_row_averages():
    img = noisy(8, 12)
    out = correct_defects(img, DefectList(12, 8, bad_columns=[4, 5, 6, 7]))
    left, right = img[:, 3], img[:, 8]

    def rows_around(col, r):
        lo, hi = max(r - 1, 0), min(r + 1, 7)
        return col[lo : hi + 1].mean()

    for i, c in enumerate(range(4, 8)):
        w = (i + 1) / 5
        for r in range(8):
            expected = (1 - w) * rows_around(left, r) + w * rows_around(right, r)
            assert out[r, c] == pytest.approx(expected, rel=1e-6)


def test_wide_long_band_far_from_edges_copies_nearby_good_pixels():
    img = noisy(40, 40)
    out = correct_defects(img, DefectList(40, 40, bad_columns=[18, 19, 20, 21]))
    good_values = set(img[:, :18].ravel()) | set(img[:, 22:].ravel())
    # Rows at least 7 from the top and bottom are sampled from good pixels up to 15
    # columns away; the ends are averages.
    assert set(out[7:33, 18:22].ravel()) <= good_values
    assert changed(img, out) <= {(r, c) for r in range(40) for c in range(18, 22)}


def test_bad_row_band_uses_rows_above_and_below():
    img = noisy(8, 10)
    out = correct_defects(img, DefectList(10, 8, bad_rows=[2]))
    r = row_of(8, 2)
    assert np.allclose(out[r], (img[r - 1] + img[r + 1]) / 2)
    assert changed(img, out) <= {(r, c) for c in range(10)}


def test_partial_column_and_partial_row_cover_only_their_extent():
    img = noisy(8, 10)
    d = DefectList(
        10,
        8,
        partial_bad_columns=[PartialBadLine(start=3, width=1, first=1, last=3)],
        partial_bad_rows=[PartialBadLine(start=6, width=1, first=5, last=8)],
    )
    out = correct_defects(img, d)
    column_rows = [row_of(8, y) for y in (1, 2, 3)]
    assert np.allclose(out[column_rows, 3], (img[column_rows, 2] + img[column_rows, 4]) / 2)
    r = row_of(8, 6)
    assert np.allclose(out[r, 5:9], (img[r - 1, 5:9] + img[r + 1, 5:9]) / 2)
    expected_changes = {(row, 3) for row in column_rows} | {(r, c) for c in range(5, 9)}
    assert changed(img, out) <= expected_changes


def test_outside_usable_area_tapers_to_a_running_mean_of_last_good_row():
    ny, nx = 8, 30
    img = noisy(ny, nx)
    # Last good row 5 from the top: file rows 6 and 7 are array rows 1 and 0.
    out = correct_defects(img, DefectList(nx, ny, usable_area=UsableArea(0, 0, 5, 0)))
    good = img[2].astype(np.float64)
    window = 3  # (30 + 9) // 10
    starts = np.minimum(np.arange(nx), nx - window)
    running = np.array([good[s : s + window].mean() for s in starts])
    for row, frac in ((1, 0.8), (0, 0.6)):
        assert np.allclose(out[row], frac * good + (1 - frac) * running, rtol=1e-6)
    assert changed(img, out) <= {(r, c) for r in (0, 1) for c in range(nx)}


def test_usable_area_taper_reaches_the_running_mean_after_five_rows():
    ny, nx = 12, 10
    img = noisy(ny, nx)
    # First good column 7: columns 0-6 are filled from column 7.
    out = correct_defects(img, DefectList(nx, ny, usable_area=UsableArea(0, 7, 0, 0)))
    good = img[:, 7].astype(np.float64)
    window = 2  # (12 + 9) // 10
    starts = np.clip(np.arange(ny) - window // 2 + 1, 0, ny - window)
    running = np.array([good[s : s + window].mean() for s in starts])
    for distance in range(1, 8):
        frac = max(0.0, (5 - distance) / 5)
        assert np.allclose(out[:, 7 - distance], frac * good + (1 - frac) * running)


def test_list_for_half_the_frame_size_is_scaled_up():
    img = noisy(16, 20)
    d = DefectList(10, 8, k2_type=1, bad_pixels=[(3, 2)], bad_columns=[7])
    prepared = prepare_defects(d, img.shape)
    assert prepared.geometry.was_scaled == 1 and prepared.binning == 1
    out = correct_defects(img, d)
    # Pixel (3, 2) of the 10 x 8 list: rows 2-3 of 8 from the top, scaled to rows 4-5 of
    # 16 from the top, i.e. array rows 10-11; columns 6-7.
    assert changed(img, out) == {(r, c) for r in (10, 11) for c in (6, 7)} | {
        (r, c) for r in range(16) for c in (14, 15)
    }
    assert np.allclose(out[:, 14], img[:, 13] * 2 / 3 + img[:, 16] / 3)


def test_list_for_a_larger_camera_is_binned_and_centred():
    img = noisy(8, 10)
    d = DefectList(24, 16, bad_columns=[9], bad_pixels=[(14, 4)])
    prepared = prepare_defects(d, img.shape)
    assert prepared.binning == 2
    assert (prepared.offset_x, prepared.offset_y) == (1, 0)
    out = correct_defects(img, d)
    # Column 9 -> binned column 4 -> frame column 3; pixel (14, 4) -> flipped row 11 ->
    # binned (7, 5) -> frame (6, 5).
    assert np.allclose(out[:, 3], (img[:, 2] + img[:, 4]) / 2)
    assert out[5, 6] == pytest.approx((img[5, 5] + img[5, 7] + img[4, 6] + img[6, 6]) / 4)
    assert changed(img, out) <= {(r, 3) for r in range(8)} | {(5, 6)}


def test_explicit_binning_is_checked():
    d = DefectList(24, 16)
    assert prepare_defects(d, (8, 10), binning=1).binning == 1
    with pytest.raises(DedkitError, match="binning 3"):
        prepare_defects(d, (8, 10), binning=3)


def test_frames_more_than_twice_the_camera_are_refused():
    with pytest.raises(DedkitError, match="twice"):
        prepare_defects(DefectList(10, 8), (17, 21))


ROTATION_LIST = DefectList(
    16,
    14,
    bad_pixels=[(2, 2)],
    bad_columns=[7],
    partial_bad_columns=[PartialBadLine(12, 1, 3, 6)],
    partial_bad_rows=[PartialBadLine(10, 2, 1, 4)],
)


@pytest.mark.parametrize("value", range(8))
def test_correcting_rotated_frames_with_rotated_list_equals_rotating_corrected_frames(value):
    img = noisy(14, 16, seed=value)
    expected = rotflip(correct_defects(img, ROTATION_LIST), value)
    rotated = np.ascontiguousarray(rotflip(img, value))
    assert rotated.shape == rotflip_shape(img.shape, value)
    out = correct_defects(rotated, ROTATION_LIST, rotflip=value)
    np.testing.assert_allclose(out, expected, rtol=1e-6)


@pytest.mark.parametrize("value", range(8))
def test_defect_map_of_rotated_list_is_rotated_map(value):
    shape = (14, 16)
    expected = rotflip(defect_map(ROTATION_LIST, shape), value)
    np.testing.assert_array_equal(
        defect_map(ROTATION_LIST, rotflip_shape(shape, value), rotflip=value), expected
    )


@pytest.mark.parametrize("value", [1, 2, 3, 4, 5, 6, 7])
def test_list_saved_rotated_is_undone_for_unrotated_frames(value):
    # SerialEM wrote the list for frames saved with r/f `value`; these frames were saved
    # without rotation (title "r/f 0 need value").
    rotated_ny, rotated_nx = rotflip_shape((14, 16), value)
    block = DefectList(rotated_nx, rotated_ny, rotation_and_flip=value, bad_pixels=[(2, 5)])
    marker_top_down = np.zeros((rotated_ny, rotated_nx), np.uint8)
    marker_top_down[5, 2] = 1
    expected = rotflip(np.flipud(marker_top_down), inverse_rotflip(value))
    np.testing.assert_array_equal(defect_map(block, (14, 16), rotflip=0), expected)


def test_defect_map_marks_defects_and_outside_usable_area_y_up():
    d = DefectList(
        10,
        8,
        usable_area=UsableArea(1, 0, 0, 8),
        bad_pixels=[(3, 2)],
        bad_rows=[5],
        partial_bad_columns=[PartialBadLine(5, 2, 3, 4)],
    )
    m = defect_map(d, (8, 10))
    assert m.dtype == np.uint8
    expected = np.zeros((8, 10), np.uint8)
    expected[row_of(8, 0), :] = 1  # above the first good row
    expected[:, 9] = 1  # right of the last good column
    expected[row_of(8, 2), 3] = 1
    expected[row_of(8, 5), :] = 1
    expected[[row_of(8, 3), row_of(8, 4)], 5:7] = 1
    np.testing.assert_array_equal(m, expected)


def test_defect_map_scales_a_k2_list_and_marks_blocks():
    d = DefectList(10, 8, k2_type=1, bad_pixels=[(3, 2)])
    m = defect_map(d, (16, 20))
    assert set(zip(*np.nonzero(m), strict=True)) == {(10, 6), (10, 7), (11, 6), (11, 7)}
    with pytest.raises(DedkitError, match="within 10 pixels"):
        defect_map(d, (40, 40))


def test_integer_frames_keep_dtype_and_round_between_floor_and_ceiling():
    img = noisy(8, 10, dtype=np.uint16)
    d = DefectList(10, 8, bad_pixels=[(3, 2), (6, 5)], bad_columns=[8])
    out = correct_defects(img, d)
    assert out.dtype == np.uint16
    r = row_of(8, 2)
    total = int(img[r, 2]) + int(img[r, 4]) + int(img[r - 1, 3]) + int(img[r + 1, 3])
    assert out[r, 3] in (total // 4, -(-total // 4))
    blend = (img[:, 7].astype(float) + img[:, 9]) / 2
    assert np.all((out[:, 8] == np.floor(blend)) | (out[:, 8] == np.ceil(blend)))


def test_corrector_continues_imod_generators_and_can_restart():
    img = noisy(8, 10, dtype=np.int16)
    d = DefectList(10, 8, bad_columns=[4])
    corrector = DefectCorrector.from_defects(d, img.shape)
    first = corrector.apply(img)
    corrector.reset_random_state()
    np.testing.assert_array_equal(corrector.apply(img), first)
    np.testing.assert_array_equal(correct_defects(img, d), first)


def test_out_may_be_the_frame_itself_or_a_separate_array():
    img = noisy(8, 10)
    d = DefectList(10, 8, bad_columns=[4])
    expected = correct_defects(img, d)
    separate = np.empty_like(img)
    assert correct_defects(img, d, out=separate) is separate
    np.testing.assert_array_equal(separate, expected)
    in_place = img.copy()
    correct_defects(in_place, d, out=in_place)
    np.testing.assert_array_equal(in_place, expected)
    with pytest.raises(DedkitError, match="same shape and dtype"):
        correct_defects(img, d, out=np.empty((8, 10), np.float64))


def test_stack_is_corrected_frame_by_frame():
    stack = np.stack([noisy(8, 10, seed=s) for s in range(3)])
    d = DefectList(10, 8, bad_pixels=[(2, 2)], bad_columns=[6])
    out = correct_defects(stack, d)
    for frame, corrected in zip(stack, out, strict=True):
        np.testing.assert_allclose(corrected, correct_defects(frame, d))


def test_wrong_shape_and_dtype_are_refused():
    corrector = DefectCorrector.from_defects(DefectList(10, 8), (8, 10))
    with pytest.raises(DedkitError, match="do not match"):
        corrector.apply(np.zeros((8, 9), np.float32))
    with pytest.raises(DedkitError, match="complex"):
        corrector.apply(np.zeros((8, 10), np.complex64))


def test_scaled_falcon_lists_are_refused():
    with pytest.raises(DedkitError, match="Falcon"):
        prepare_defects(DefectList(10, 8, falcon_type=1, was_scaled=1), (8, 10))


def test_mid_size_frame_with_many_defects_changes_only_mapped_pixels():
    ny, nx = 1024, 1536
    rng = np.random.default_rng(5)
    pixels = {(int(x), int(y)) for x, y in rng.integers(0, [nx, ny], size=(3000, 2))}
    d = DefectList(
        nx,
        ny,
        k2_type=1,
        usable_area=UsableArea(2, 3, ny - 4, nx - 2),
        bad_pixels=sorted(pixels),
        bad_columns=[100, 101, 102, 103, 104, 700, 1200, 1201],
        bad_rows=[300, 301, 900],
        partial_bad_columns=[PartialBadLine(1000, 3, 10, 400)],
    )
    img = rng.integers(0, 50, size=(ny, nx)).astype(np.uint16)
    corrector = DefectCorrector.from_defects(d, img.shape)
    out = corrector.apply(img)
    out_again = corrector.apply(out)
    mapped = defect_map(d, img.shape).astype(bool)
    assert not np.any((out != img) & ~mapped)
    assert not np.any((out_again != out) & ~mapped)

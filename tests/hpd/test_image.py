"""Super-resolution images: binning, flat-field normalisation, writing."""

import numpy as np
import pytest

from dedkit.errors import DedkitError
from dedkit.hpd.image import subpixel_response, super_resolution_image
from dedkit.io.stack import open_stack
from dedkit.jobs.hpd import write_image
from dedkit.records.tables import EventTable


def events_at(x, y):
    x = np.asarray(x, np.float64)
    return EventTable(np.zeros(len(x), np.int64), x, np.asarray(y, np.float64), np.ones(len(x)))


@pytest.mark.parametrize("n", range(1, 9))
def test_known_positions_land_in_their_bins(n):
    # one event in the centre of every sub-bin (a, b) of pixel (row 2, column 3), and a
    # second one in sub-bin (n - 1, 0)
    a, b = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    x = np.concatenate([3 + (b.ravel() + 0.5) / n, [3 + 0.5 / n]])
    y = np.concatenate([2 + (a.ravel() + 0.5) / n, [2 + (n - 0.5) / n]])
    image = super_resolution_image(events_at(x, y), (4, 5), upsample=n)
    assert image.shape == (4 * n, 5 * n) and image.dtype == np.float32
    expected = np.zeros((4 * n, 5 * n), np.float32)
    expected[2 * n : 3 * n, 3 * n : 4 * n] = 1
    expected[3 * n - 1, 3 * n] += 1
    np.testing.assert_array_equal(image, expected)


def test_events_outside_the_detector_or_not_finite_are_left_out():
    events = events_at([0.0, 4.999, -0.01, 5.0, 1.0, np.nan], [0.0, 3.999, 1.0, 1.0, 4.0, 1.0])
    image = super_resolution_image(events, (4, 5), upsample=2)
    assert image.sum() == 2
    assert image[0, 0] == 1 and image[7, 9] == 1


def test_flat_illumination_gives_a_flat_image():
    # every pixel receives the same events, crowded towards the pixel centre as a
    # centroid would put them
    rng = np.random.default_rng(3)
    offsets = rng.beta(3, 3, (200, 2))
    rows, cols = np.meshgrid(np.arange(6), np.arange(7), indexing="ij")
    x = (cols.ravel()[:, None] + offsets[None, :, 0]).ravel()
    y = (rows.ravel()[:, None] + offsets[None, :, 1]).ravel()
    events = events_at(x, y)
    raw = super_resolution_image(events, (6, 7), upsample=4)
    assert raw.std() > 0.5 * raw.mean()
    flat = super_resolution_image(events, (6, 7), upsample=4, flat_field="counts")
    np.testing.assert_allclose(flat, raw.mean(), rtol=1e-6)
    # the same response measured on a separate flat field corrects another image
    sample = events_at(x[: 200 * 7], y[: 200 * 7])  # the first row of pixels only
    corrected = super_resolution_image(sample, (6, 7), upsample=4, flat_field=events)
    np.testing.assert_allclose(corrected[:4], raw.mean(), rtol=1e-6)
    assert not corrected[4:].any()


def test_subpixel_response_has_mean_one_and_unit_factor_is_neutral():
    events = events_at([0.1, 0.1, 0.6, 1.6], [0.2, 0.2, 0.7, 0.9])
    response = subpixel_response(events, 2)
    np.testing.assert_allclose(response, [[2, 0], [0, 2]])
    assert response.mean() == 1
    plain = super_resolution_image(events, (2, 2))
    np.testing.assert_array_equal(
        super_resolution_image(events, (2, 2), flat_field="counts"), plain
    )


def test_subpixel_bins_the_flat_field_missed_are_zero():
    flat = events_at([0.25], [0.25])  # sub-bin (0, 0) only
    image = super_resolution_image(
        events_at([0.25, 0.75], [0.25, 0.25]), (1, 1), 2, flat_field=flat
    )
    np.testing.assert_allclose(image, [[0.25, 0], [0, 0]])


@pytest.mark.parametrize("n", [0, 9, 2.5, "2", True, None])
def test_bad_upsampling_is_refused(n):
    with pytest.raises(DedkitError, match="upsampling"):
        super_resolution_image(events_at([0.5], [0.5]), (2, 2), upsample=n)


def test_bad_arguments_are_refused():
    events = events_at([0.5], [0.5])
    with pytest.raises(DedkitError, match="flat_field"):
        super_resolution_image(events, (2, 2), 2, flat_field="flat")
    with pytest.raises(DedkitError, match="shape"):
        super_resolution_image(events, (0, 2), 2)
    with pytest.raises(DedkitError, match="no events"):
        super_resolution_image(events, (2, 2), 2, flat_field=events_at([], []))


@pytest.mark.parametrize("suffix", [".mrc", ".tif"])
def test_write_image_round_trip(tmp_path, suffix):
    image = np.arange(12, dtype=np.float32).reshape(3, 4) / 3
    path = tmp_path / f"image{suffix}"
    write_image(path, image)
    with open_stack(path) as reader:
        assert len(reader) == 1
        np.testing.assert_array_equal(reader.read(0), image)
    with pytest.raises(DedkitError):
        write_image(path, image)
    write_image(path, 2 * image, force=True)
    with open_stack(path) as reader:
        np.testing.assert_array_equal(reader.read(0), 2 * image)

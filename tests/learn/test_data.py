"""Training-data handling: truth frame, the 8 symmetries with their labels, split, noise."""

from __future__ import annotations

import numpy as np
import pytest

from dedkit.errors import DedkitError
from dedkit.learn.data import (
    add_label_noise,
    add_pixel_noise,
    apply_symmetry,
    load_training_arrays,
    random_symmetries,
    split_indices,
)
from dedkit.records.tables import FEATURE_NAMES

EX, EY = FEATURE_NAMES.index("extent_x_px"), FEATURE_NAMES.index("extent_y_px")


def _marked(row, column, size=15):
    # one bright pixel, and a label at that pixel's centre (relative to the crop centre)
    image = np.zeros((1, size, size), np.float32)
    image[0, row, column] = 50.0
    label = np.array([[column + 0.5 - size / 2, row + 0.5 - size / 2]], np.float32)
    features = np.zeros((1, 7), np.float32)
    features[0, EX], features[0, EY] = 3.0, 5.0
    return image, label, features


@pytest.mark.parametrize("op", range(8))
def test_each_symmetry_moves_the_label_with_the_cluster(op):
    image, label, features = _marked(2, 11)
    # a second, off-diagonal marker so that no symmetry maps the image onto itself
    image[0, 4, 3] = 20.0
    new_image, new_label, new_features = apply_symmetry(image, label, features, op)
    row, column = np.unravel_index(np.argmax(new_image[0]), new_image.shape[1:])
    assert new_label[0, 0] == pytest.approx(column + 0.5 - 7.5)
    assert new_label[0, 1] == pytest.approx(row + 0.5 - 7.5)
    transposed = bool(op & 4)
    assert new_features[0, EX] == (5.0 if transposed else 3.0)
    assert new_features[0, EY] == (3.0 if transposed else 5.0)
    assert new_image.sum() == image.sum()


def test_the_eight_symmetries_are_distinct_and_invertible():
    rng = np.random.default_rng(0)
    image = rng.random((1, 15, 15)).astype(np.float32)
    label = np.array([[1.25, -3.5]], np.float32)
    features = rng.random((1, 7)).astype(np.float32)
    seen = set()
    for op in range(8):
        a, b, _ = apply_symmetry(image, label, features, op)
        seen.add(a.tobytes())
        # transposing and mirroring are involutions except the 90-degree rotations
        inverse = op if op in (0, 1, 2, 3, 4, 7) else {5: 6, 6: 5}[op]
        back, back_label, back_features = apply_symmetry(a, b, _, inverse)
        np.testing.assert_array_equal(back, image)
        np.testing.assert_allclose(back_label, label)
        np.testing.assert_array_equal(back_features, features)
    assert len(seen) == 8
    with pytest.raises(DedkitError):
        apply_symmetry(image, label, features, 8)


def test_random_symmetries_keep_each_cluster_with_its_label():
    rng = np.random.default_rng(1)
    images = np.zeros((64, 15, 15), np.float32)
    rows, columns = rng.integers(0, 15, 64), rng.integers(0, 15, 64)
    images[np.arange(64), rows, columns] = 10.0
    labels = np.stack([columns + 0.5 - 7.5, rows + 0.5 - 7.5], axis=1).astype(np.float32)
    out, out_labels, _ = random_symmetries(images, labels, np.zeros((64, 7), np.float32), rng)
    flat = out.reshape(64, -1).argmax(axis=1)
    r, c = np.divmod(flat, 15)
    np.testing.assert_allclose(out_labels, np.stack([c + 0.5 - 7.5, r + 0.5 - 7.5], axis=1))
    assert not np.array_equal(out, images)


def test_truth_is_relative_to_the_crop_centre(tiny_set):
    data = load_training_arrays(tiny_set)
    assert data.images.shape[1:] == (15, 15) and data.targets.shape == (len(data), 2)
    # the crop is centred on the pixel holding the charge centroid: the centroid is
    # inside the centre pixel, i.e. within half a pixel of the crop centre
    assert np.all(np.abs(data.centroid) <= 0.5 + 1e-9)
    assert data.energy_keV == 200.0 and data.sensor["pitch_um"] == 25.0


def test_split_is_fixed_disjoint_and_seven_to_three():
    train, test = split_indices(1000, 0.7, seed=3)
    assert len(train) == 700 and len(test) == 300
    assert not set(train) & set(test)
    again, _ = split_indices(1000, 0.7, seed=3)
    other, _ = split_indices(1000, 0.7, seed=4)
    np.testing.assert_array_equal(train, again)
    assert not np.array_equal(train, other)


def test_label_noise_unit_is_explicit():
    rng = np.random.default_rng(2)
    zeros = np.zeros((200_000, 2), np.float32)
    px = add_label_noise(zeros, 1.0, "px", 25.0, rng)
    um = add_label_noise(zeros, 1.0, "um", 25.0, rng)
    assert px.std() == pytest.approx(1.0, rel=0.01)
    assert um.std() == pytest.approx(1.0 / 25.0, rel=0.01)
    with pytest.raises(DedkitError):
        add_label_noise(zeros, 1.0, "mm", 25.0, rng)


def test_pixel_noise_only_on_the_cluster_pixels():
    rng = np.random.default_rng(3)
    images = np.zeros((500, 15, 15), np.float32)
    images[:, 6:9, 6:9] = 5.0
    noisy = add_pixel_noise(images, 0.18, rng)
    assert np.all(noisy[images == 0] == 0)
    assert (noisy[images != 0] - 5.0).std() == pytest.approx(0.18, rel=0.05)


def _damaged_copy(tiny_set, tmp_path, name, change):
    import shutil

    import h5py

    path = tmp_path / f"{name}.h5"
    shutil.copy(tiny_set, path)
    with h5py.File(path, "a") as f:
        group = f["training"]
        column, data = change(group)
        del group[column]
        group.create_dataset(column, data=data)
    return path


DAMAGES = {
    "short-column": (lambda g: ("entry_x", g["entry_x"][:-7]), "column entry_x has 293 rows"),
    "short-images": (lambda g: ("image", g["image"][:100]), "column image has 100 rows"),
    "narrow-features": (lambda g: ("features", g["features"][:, :5]), r"rows are \(5,\)"),
    "flat-images": (lambda g: ("image", g["image"][:, 0, :]), "not square crops"),
    "even-images": (lambda g: ("image", g["image"][:, :14, :14]), "not square crops"),
}


@pytest.mark.parametrize("name", sorted(DAMAGES))
def test_issue_13_item_11_a_damaged_training_set_is_one_clear_error(tiny_set, tmp_path, name):
    change, message = DAMAGES[name]
    path = _damaged_copy(tiny_set, tmp_path, name, change)
    with pytest.raises(DedkitError, match=message) as error:
        load_training_arrays(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_issue_13_item_11_crops_the_network_does_not_take_are_refused(tiny_set, tmp_path):
    from dedkit.learn.data import check_crop

    path = _damaged_copy(
        tiny_set, tmp_path, "seven", lambda g: ("image", g["image"][:, 4:11, 4:11])
    )
    data = load_training_arrays(path)  # a valid set of 7 x 7 crops
    assert data.crop == 7
    with pytest.raises(DedkitError, match="crops are 7 x 7, the network takes 15 x 15"):
        check_crop(data, 15, path)

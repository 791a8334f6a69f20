import numpy as np
import pytest

from dedkit.errors import DedkitError
from dedkit.io.images import image_shape, read_image
from dedkit.io.stack import create_stack


def test_single_image_from_mrc_and_tiff(tmp_path, rng):
    image = rng.normal(1, 0.1, (6, 8)).astype(np.float32)
    for name in ("g.mrc", "g.tif"):
        with create_stack(tmp_path / name, (1, 6, 8), np.float32) as w:
            w.write(image)
        np.testing.assert_array_equal(read_image(tmp_path / name), image)
        assert image_shape(tmp_path / name) == (6, 8)


def test_stack_is_not_a_reference(tmp_path):
    with create_stack(tmp_path / "s.mrc", (3, 2, 2), np.float32) as w:
        for _ in range(3):
            w.write(np.ones((2, 2)))
    with pytest.raises(DedkitError, match="single image, found 3"):
        read_image(tmp_path / "s.mrc")
    with pytest.raises(DedkitError, match="no such file"):
        read_image(tmp_path / "missing.mrc")

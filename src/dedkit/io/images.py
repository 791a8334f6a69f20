"""Single images used as references: gain references and 'like' files.

A gain reference may be an MRC or TIFF image (or the first frame of a stack) or a DM3/DM4
file as DigitalMicrograph saves it; :func:`read_image` returns it as a Y-up array
whatever the format.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dedkit.errors import DedkitError
from dedkit.io.dm import is_dm, read_dm
from dedkit.io.inputs import check_input_path
from dedkit.io.stack import open_stack

__all__ = ["read_image", "image_shape"]


def read_image(path) -> np.ndarray:
    """Read a one-image file (MRC, TIFF or DM3/DM4) as a (ny, nx) array, Y up.

    A stack of several images is refused: a reference must be one image.
    """
    path = check_input_path(path, "image file")
    if is_dm(path):
        return read_dm(path).data
    with open_stack(path) as stack:
        if len(stack) != 1:
            raise DedkitError(f"expected a single image, found {len(stack)} frames", path=path)
        return stack.read(0)


def image_shape(path) -> tuple[int, int]:
    """(ny, nx) of the images in an MRC/TIFF file or folder (frames are not read)."""
    path = Path(path)
    if is_dm(path):
        return read_dm(path).data.shape
    with open_stack(path) as stack:
        return stack.info.ny, stack.info.nx

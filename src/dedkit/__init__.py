"""dedkit: raw frames from direct electron detectors to the best images their physics allows.

Array convention (every function in dedkit): a frame is a 2-D numpy array indexed
``[row, column]`` with row 0 at the BOTTOM of the image (Y up), as MRC stores it and as
IMOD works. Readers of row-0-at-top formats (TIFF, DM3/DM4) flip rows on reading and
writers flip them back, so a TIFF converted to MRC and back is byte-identical and the same
scene has the same array whatever file it came from. Coordinates given "from the top"
(SerialEM defect lists) are converted at the boundary where they are parsed into arrays.
"""

from dedkit.errors import DedkitError

__version__ = "0.1.0"
__all__ = ["DedkitError", "__version__"]

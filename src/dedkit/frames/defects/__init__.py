"""Camera defect correction as IMOD does it (``clip -D``, ``alignframes``, ``clip defect``).

The rules follow IMOD/SerialEM's shared ``CorrectDefects.cpp`` (``CorDefCorrectDefects``
and the routines it calls, ``CorDefFlipDefectsInY``, ``CorDefFindTouchingPixels``,
``CorDefSetupToCorrect``, ``CorDefRotateFlipDefects``, ``CorDefFillDefectArray``) and
IMOD's ``sampleMinMaxMeanSD``. Preparation, once per stack:

1. Adjacent entries of BadColumns/BadRows are merged into bands as they are read.
2. If the frames were saved with a different rotation/flip than the list's
   RotationAndFlip, the list is rotated/flipped to match (a 2x2 super-resolution block
   keeps its lower-left corner as its coordinate).
3. The list is flipped in Y (:func:`file_rows_to_array_rows`), the one place where
   SerialEM's "y = 0 at the top" becomes dedkit's "row 0 at the bottom".
4. Bad pixels that touch another bad pixel, a bad line or the edge of the usable area
   are marked to be filled with the image mean.
5. A list smaller than the frames (up to half their size) is scaled up by 2; a list
   for a larger camera applies to binned frames, binning being the largest b with
   ``nx * b <= CameraSizeX`` and ``ny * b <= CameraSizeY``; the frame is taken to be
   centred on the camera.

Correction of one frame, in IMOD's order: touching pixels get the (sampled) image mean;
rows and columns outside the usable area are filled from the last good line, tapering
over 5 lines from that line's value to a running mean along it; bad column bands, then
partial columns, bad row bands and partial rows are interpolated from the good lines
beside them; the remaining bad pixels get the mean of their 4 neighbours (a 2x2
super-resolution block: of the 16 pixels two deep on each of its sides).

Integer frames are rounded as IMOD rounds them: randomly up or down with the probability
that makes the rounding unbiased, from IMOD's own linear congruential generators. Like
IMOD's static generators, a :class:`DefectCorrector` carries their state from one frame
to the next, so rounding errors do not repeat from frame to frame.

The package holds one part per module: :mod:`~dedkit.frames.defects.prepare` (the
defect list as bands and points, oriented, flipped to Y up and scaled: steps 1-5),
:mod:`~dedkit.frames.defects.correct` (:class:`DefectCorrector` and
:func:`correct_defects`: the per-frame plan), :mod:`~dedkit.frames.defects.kernels` (the
numba kernels that fill one frame, and IMOD's generators) and
:mod:`~dedkit.frames.defects.defectmap` (``clip defectmap``). The public names are
exported here.
"""

from dedkit.frames.defects.correct import DefectCorrector, correct_defects
from dedkit.frames.defects.defectmap import defect_map
from dedkit.frames.defects.prepare import (
    DefectGeometry,
    GoodArea,
    PreparedDefects,
    file_rows_to_array_rows,
    prepare_defects,
)

__all__ = [
    "DefectCorrector",
    "DefectGeometry",
    "GoodArea",
    "PreparedDefects",
    "correct_defects",
    "defect_map",
    "file_rows_to_array_rows",
    "prepare_defects",
]

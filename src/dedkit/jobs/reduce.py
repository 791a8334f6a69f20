"""The ``dedkit reduce`` job: reduce every frame of a stack by an integer factor.

Frames are streamed one at a time (read, reduce, write overlapped, see
:mod:`dedkit.jobs.streaming`) through :func:`dedkit.frames.reduce.reduce_image` into a new
stack written under a temporary name; the pixel size in the header is multiplied by the
factor in X and Y.
"""

from __future__ import annotations

import time

from dedkit.errors import DedkitError
from dedkit.frames.gain import OUTPUT_DTYPES
from dedkit.frames.reduce import DEFAULT_FILTER, REDUCTIONS, VALUES, reduce_image, reduced_shape
from dedkit.io.stack import check_stack_output, create_stack, open_stack
from dedkit.io.titles import parse_frame_titles
from dedkit.jobs.stacks import StackReport, _report, _titles_after
from dedkit.jobs.streaming import ProgressCallback, run_pipeline

__all__ = ["REDUCE_MODES", "reduce_stack"]

#: output modes of ``dedkit reduce --mode`` (clip's names)
REDUCE_MODES = tuple(OUTPUT_DTYPES)


def reduce_stack(
    input,
    output,
    factor: int,
    *,
    filter: str = DEFAULT_FILTER,
    values: str = "sum",
    mode: str = "float",
    force: bool = False,
    progress: ProgressCallback | None = None,
) -> StackReport:
    """Reduce every frame of a stack (MRC, TIFF, folder; 4-bit data unpacked on reading).

    Parameters
    ----------
    input, output : path-like
        Output format from the suffix (.mrc..., .tif, none for a folder).
    factor : int
        Reduction factor; the output is ``nx // factor`` x ``ny // factor``.
    filter : str
        An antialias filter ('box', 'blackman', 'triangle', 'mitchell', 'lanczos2',
        'lanczos3') or 'bin' for plain binning.
    values : {'sum', 'mean'}
        Output pixels hold the sum of the pixels they replace (SerialEM) or their mean.
    mode : {'byte', 'short', 'ushort', 'float'}
        Output type; integer types are rounded and clipped, with every changed value
        counted in the report.
    force : bool
        Replace an existing output.
    progress : callable(done, total), optional
    """
    started = time.perf_counter()
    if filter not in REDUCTIONS:
        raise DedkitError(f"unknown filter {filter!r}; use one of {', '.join(REDUCTIONS)}")
    if values not in VALUES:
        raise DedkitError(f"unknown values {values!r}; use 'sum' or 'mean'")
    if mode not in OUTPUT_DTYPES:
        raise DedkitError(f"unknown output mode {mode!r}; use one of {', '.join(REDUCE_MODES)}")
    check_stack_output(output, [input], force)
    with open_stack(input) as reader:
        info = reader.info
        ny, nx = reduced_shape((info.ny, info.nx), factor)
        pixel_size = None
        if info.pixel_size is not None:
            px, py, pz = info.pixel_size
            pixel_size = (px * factor, py * factor, pz)
        scaling = parse_frame_titles(info.titles).scaling
        titles = _titles_after(
            reader,
            scaling=scaling,
            packed_4bit=False,
            note=f"dedkit reduce: {filter} by {factor}, {values} of pixels",
        )
        with create_stack(
            output,
            (info.nz, ny, nx),
            OUTPUT_DTYPES[mode],
            titles=titles,
            pixel_size=pixel_size,
            force=force,
            inputs=[input],
        ) as writer:

            def compute(i, frame):
                return reduce_image(frame, factor, filter, values=values)

            def write(i, frame):
                writer.write(frame)

            run_pipeline(info.nz, reader.read, compute, write, progress=progress)
    return _report(
        "reduce",
        [input],
        writer,
        started,
        factor=int(factor),
        filter=filter,
        values=values,
        mode=mode,
        pixel_size=list(pixel_size) if pixel_size else None,
    )

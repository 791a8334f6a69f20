"""An EER movie whose content moves by one pixel per frame (+1 row, -1 column): for the
tests that read EER movies end to end (tests/io/test_eer.py, tests/jobs/test_session.py)."""

from __future__ import annotations

import numpy as np

from dedkit.io.eer import write_eer


def drifting_eer_movie(path, *, n_frames=6, group=4, shape=(96, 96), seed=1):
    """Write ``n_frames`` frames of ``group`` fractions each: a 1/f specimen (structure at
    all scales, nothing periodic), one electron per pixel at most per fraction."""
    rng = np.random.default_rng(seed)
    k = np.hypot(np.fft.fftfreq(shape[0])[:, None], np.fft.fftfreq(shape[1])[None, :])
    k[0, 0] = 1
    field = np.real(np.fft.ifft2(np.fft.fft2(rng.normal(size=shape)) / k))
    specimen = np.clip(0.5 + 0.15 * field / field.std(), 0.05, 0.95)
    fractions = []
    for frame in range(n_frames):
        moved = np.roll(specimen, (frame, -frame), axis=(0, 1))  # 1 px per frame
        for _ in range(group):
            y, x = np.nonzero(rng.random(shape) < moved)
            fractions.append(np.stack([4 * x + 1, 4 * y + 2], axis=1))
    write_eer(path, fractions, shape=shape)

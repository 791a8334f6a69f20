"""Motion correction of localised electrons (dedkit.hpd.motion, issue 17)."""

import numpy as np
import pytest

from dedkit.errors import DedkitError
from dedkit.hpd.image import super_resolution_image
from dedkit.hpd.motion import (
    EventMotion,
    corrected_image,
    estimate_event_motion,
    group_images,
    group_of_frames,
)
from dedkit.records.tables import EventTable


def _drifting_events(rng, n_frames=40, per_frame=4000, drift=(4.0, -2.0), size=96):
    blobs = rng.uniform(8, size - 8, (50, 2))
    frame, xs, ys, true = [], [], [], []
    for f in range(1, n_frames + 1):
        t = (f - 1) / (n_frames - 1)
        d = np.array(drift) * t
        which = rng.integers(0, len(blobs), per_frame)
        xy = blobs[which] + rng.normal(0, 1.2, (per_frame, 2)) + d
        frame.append(np.full(per_frame, f))
        xs.append(xy[:, 0])
        ys.append(xy[:, 1])
        true.append(d)
    events = EventTable(
        np.concatenate(frame), np.concatenate(xs), np.concatenate(ys),
        np.ones(n_frames * per_frame, np.float32),
    )  # fmt: skip
    return events, np.array(true)


def test_drift_is_recovered_and_taken_off():
    events, true = _drifting_events(np.random.default_rng(0))
    motion = estimate_event_motion(events, (96, 96), group_frames=5)
    assert motion.n_groups == 8
    truth = true.reshape(8, 5, 2).mean(axis=1)
    error = (motion.shifts - motion.shifts.mean(0)) - (truth - truth.mean(0))
    assert np.abs(error).max() < 0.15
    sharp = corrected_image(events, (96, 96), 2, motion, flat_field=False)
    blurred = corrected_image(events, (96, 96), 2, None, flat_field=False)
    # the corrected image is sharper: more power in its fine detail
    assert sharp.std() > 1.1 * blurred.std()


def test_without_motion_it_is_the_super_resolution_image():
    rng = np.random.default_rng(1)
    n = 5000
    events = EventTable(np.ones(n, np.int64), rng.uniform(0, 10, n), rng.uniform(0, 8, n),
                        np.ones(n, np.float32))  # fmt: skip
    plain = corrected_image(events, (8, 10), 4, flat_field=False)
    assert np.array_equal(plain, super_resolution_image(events, (8, 10), 4))
    flat = corrected_image(events, (8, 10), 4, flat_field=True)
    reference = super_resolution_image(events, (8, 10), 4, flat_field="counts")
    assert np.allclose(flat, reference, rtol=1e-5)
    assert flat.sum() == pytest.approx(n, rel=1e-6)


def test_flat_field_weights_follow_the_detected_position():
    # a localiser that piles every event at pixel centres: after the flat field the
    # image of a flat illumination is flat at the pixel scale
    rng = np.random.default_rng(2)
    n = 40000
    x = np.floor(rng.uniform(0, 16, n)) + np.clip(rng.normal(0.5, 0.15, n), 0, 0.999)
    y = np.floor(rng.uniform(0, 16, n)) + rng.uniform(0, 1, n)
    events = EventTable(np.ones(n, np.int64), x, y, np.ones(n, np.float32))
    image = corrected_image(events, (16, 16), 4)
    columns = image.reshape(64, 16, 4).sum(axis=(0, 1))
    assert np.ptp(columns) / columns.mean() < 0.05


def test_groups_and_interpolation():
    assert group_of_frames([3, 4, 5, 6], 3, 2).tolist() == [0, 0, 1, 1]
    with pytest.raises(DedkitError):
        group_of_frames([1], 1, 0)
    events = EventTable(np.array([1, 3]), np.array([0.5, 0.5]), np.array([0.5, 0.5]),
                        np.ones(2, np.float32))  # fmt: skip
    stack = group_images(events, (1, 1), group_frames=2, n_groups=3)
    assert stack[:, 0, 0].tolist() == [1.0, 1.0, 0.0]
    motion = EventMotion(1, 2, np.array([[1.0, 2.0]]), np.array([2]))
    assert motion.at([1, 100]).tolist() == [[1.0, 2.0], [1.0, 2.0]]
    assert motion.total_drift() == 0.0

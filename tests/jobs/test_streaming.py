import threading

import pytest

from dedkit.jobs.streaming import run_pipeline


def test_every_frame_in_order_with_progress():
    written, progress = [], []
    run_pipeline(
        5,
        read=lambda i: i * 10,
        compute=lambda i, x: (i, x + 1),
        write=lambda i, r: written.append(r),
        progress=lambda done, total: progress.append((done, total)),
    )
    assert written == [(i, i * 10 + 1) for i in range(5)]
    assert progress[-1] == (5, 5) and [d for d, _ in progress] == sorted(d for d, _ in progress)


def test_stages_overlap_but_each_stage_is_sequential():
    active = {"read": 0, "write": 0}
    peak = {"read": 0, "write": 0}
    lock = threading.Lock()

    def stage(name):
        def fn(*args):
            with lock:
                active[name] += 1
                peak[name] = max(peak[name], active[name])
            with lock:
                active[name] -= 1
            return args[-1]

        return fn

    run_pipeline(20, stage("read"), lambda i, x: x, stage("write"))
    assert peak == {"read": 1, "write": 1}


@pytest.mark.parametrize("failing", ["read", "compute", "write"])
def test_an_error_in_any_stage_stops_and_propagates(failing):
    written = []

    def maybe_fail(stage, i, value):
        if stage == failing and i == 2:
            raise ValueError(f"{stage} failed")
        return value

    with pytest.raises(ValueError, match=f"{failing} failed"):
        run_pipeline(
            10,
            read=lambda i: maybe_fail("read", i, i),
            compute=lambda i, x: maybe_fail("compute", i, x),
            write=lambda i, r: written.append(maybe_fail("write", i, r)),
        )
    assert len(written) <= 2


def test_no_frames_is_a_no_op():
    run_pipeline(0, read=None, compute=None, write=None)

"""The reduce job called directly (:func:`dedkit.jobs.reduce.reduce_stack`)."""

from __future__ import annotations

import mrcfile
import numpy as np
import pytest

from dedkit.errors import DedkitError
from dedkit.io.stack import open_stack
from dedkit.jobs.reduce import reduce_stack
from dedkit.jobs.stacks import StackReport


def read_stack(path):
    with open_stack(path) as s:
        return np.stack([s.read(i) for i in range(len(s))])


@pytest.fixture
def frames(tmp_path):
    data = np.random.default_rng(2).integers(0, 50, (2, 12, 18)).astype(np.float32)
    path = tmp_path / "in.mrc"
    with mrcfile.new(path) as m:
        m.set_data(data)
        m.voxel_size = 1.5
    return data, path


def block_sum(a, f):
    nz, ny, nx = a.shape
    return a.reshape(nz, ny // f, f, nx // f, f).sum(axis=(2, 4))


@pytest.mark.parametrize("values", ["sum", "mean"])
def test_reduce_stack_binning_is_the_block_sum_or_mean(frames, tmp_path, values):
    data, src = frames
    out = tmp_path / "out.mrc"
    report = reduce_stack(src, out, 3, filter="bin", values=values)
    assert isinstance(report, StackReport)
    assert report.command == "reduce" and report.output == str(out)
    assert report.inputs == [str(src)]
    assert report.frames == 2 and tuple(report.shape) == (2, 4, 6)
    assert report.dtype == "float32" and report.output_bytes == out.stat().st_size
    assert report.details["factor"] == 3 and report.details["filter"] == "bin"
    assert report.details["values"] == values and report.details["mode"] == "float"
    # the pixel size grows with the factor in X and Y (not Z)
    assert report.details["pixel_size"] == pytest.approx([4.5, 4.5, 1.5])
    expected = block_sum(data, 3) / (9 if values == "mean" else 1)
    np.testing.assert_allclose(read_stack(out), expected, rtol=1e-6)


def test_reduce_stack_lanczos_to_integers_counts_rounding(frames, tmp_path, cli):
    _, src = frames
    out = tmp_path / "out.mrc"
    report = reduce_stack(src, out, 2, mode="short")
    assert report.dtype == "int16" and tuple(report.shape) == (2, 6, 9)
    assert report.details["filter"] == "lanczos3"
    assert report.n_rounded > 0
    status, _, err = cli("reduce", src, tmp_path / "cli.mrc", "-f", "2", "-m", "short", "-q")
    assert status == 0, err
    assert out.read_bytes() == (tmp_path / "cli.mrc").read_bytes()


@pytest.mark.parametrize(
    "kwargs, words",
    [({"filter": "gauss"}, "unknown filter"), ({"values": "max"}, "unknown values"),
     ({"mode": "double"}, "unknown output mode")],
)  # fmt: skip
def test_reduce_stack_refuses_unknown_settings_before_writing(frames, tmp_path, kwargs, words):
    _, src = frames
    out = tmp_path / "out.mrc"
    with pytest.raises(DedkitError, match=words):
        reduce_stack(src, out, 2, **kwargs)
    assert not out.exists()

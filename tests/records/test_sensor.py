import math

import numpy as np
import pytest

from dedkit.errors import DedkitError
from dedkit.records.sensor import SensorGeometry


def test_defaults_are_moench03():
    s = SensorGeometry()
    assert (s.thickness_um, s.pitch_um, s.nx, s.ny) == (320.0, 25.0, 400, 400)
    assert s.width_um == 10_000.0 and s.height_um == 10_000.0
    assert s.shape == (400, 400)


def test_not_square_shape_is_rows_by_columns():
    s = SensorGeometry(thickness_um=300, pitch_um=20, nx=30, ny=10)
    assert s.shape == (10, 30)
    assert (s.width_um, s.height_um) == (600.0, 200.0)
    assert isinstance(s.thickness_um, float) and isinstance(s.nx, int)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"thickness_um": 0}, "thickness_um must be positive"),
        ({"thickness_um": -320}, "thickness_um must be positive"),
        ({"thickness_um": math.nan}, "thickness_um must be positive"),
        ({"pitch_um": 0.0}, "pitch_um must be positive"),
        ({"pitch_um": math.inf}, "pitch_um must be positive"),
        ({"pitch_um": "25"}, "pitch_um must be a number"),
        ({"pitch_um": True}, "pitch_um must be a number"),
        ({"nx": 0}, "nx must be at least 1"),
        ({"ny": -3}, "ny must be at least 1"),
        ({"nx": 2.5}, "whole number of pixels"),
        ({"ny": True}, "whole number of pixels"),
    ],
)
def test_bad_values_are_refused(kwargs, words):
    with pytest.raises(DedkitError, match=words):
        SensorGeometry(**kwargs)


def test_whole_float_pixel_counts_are_accepted():
    assert SensorGeometry(nx=12.0, ny=np.int64(7)).shape == (7, 12)


def test_from_size_refuses_pitch_larger_than_sensor():
    with pytest.raises(DedkitError, match="larger than the sensor"):
        SensorGeometry.from_size(20.0, 500.0, pitch_um=25.0)
    with pytest.raises(DedkitError, match="not a whole number"):
        SensorGeometry.from_size(510.0, 500.0, pitch_um=25.0)
    with pytest.raises(DedkitError, match="width must be positive"):
        SensorGeometry.from_size(-10.0, 500.0)
    s = SensorGeometry.from_size(1000.0, 500.0, pitch_um=25.0, thickness_um=450.0)
    assert (s.nx, s.ny, s.thickness_um) == (40, 20, 450.0)


def test_pixel_of_follows_the_shared_convention():
    s = SensorGeometry(pitch_um=25.0, nx=4, ny=3)
    # column from x, row from y; the lower edge belongs to the pixel, the upper does not
    rows, cols = s.pixel_of(
        [0.0, 24.999, 25.0, 99.9, 100.0, -0.1, 10.0], [0, 0, 74.9, 50, 0, 0, 75]
    )
    assert cols.tolist() == [0, 0, 1, 3, -1, -1, -1]
    assert rows.tolist() == [0, 0, 2, 2, -1, -1, -1]


def test_contains():
    s = SensorGeometry(thickness_um=100, pitch_um=10, nx=2, ny=2)
    inside = s.contains([0, 19.9, 20.0, 5, 5], [0, 5, 5, 5, 5], [0, 100, 50, -0.1, 100.1])
    assert inside.tolist() == [True, True, False, False, False]


def test_dict_round_trip_and_unknown_keys():
    s = SensorGeometry(thickness_um=450, pitch_um=75, nx=8, ny=6)
    assert SensorGeometry.from_dict(s.to_dict()) == s
    with pytest.raises(DedkitError, match="unknown sensor geometry keys: colour"):
        SensorGeometry.from_dict({**s.to_dict(), "colour": "blue"})


def test_is_frozen_and_hashable():
    s = SensorGeometry()
    with pytest.raises(AttributeError):
        s.nx = 3
    assert {s: 1}[SensorGeometry()] == 1


def test_from_options_is_the_command_line_sensor():
    assert SensorGeometry.from_options() == SensorGeometry()
    assert SensorGeometry.from_options(nx=40).shape == (400, 40)
    s = SensorGeometry.from_options(thickness_um=300.0, pitch_um=50.0, area_um=(1000.0, 500.0))
    assert (s.thickness_um, s.pitch_um, s.shape) == (300.0, 50.0, (10, 20))
    with pytest.raises(DedkitError, match="in pixels or in um, not both"):
        SensorGeometry.from_options(ny=4, area_um=(1000.0, 500.0))
    with pytest.raises(DedkitError, match="larger than the sensor"):
        SensorGeometry.from_options(area_um=(20.0, 20.0))

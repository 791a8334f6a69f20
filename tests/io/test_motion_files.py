"""Shifts and FRC CSV files, and RELION's per-movie motion STAR file read back by starfile."""

import csv

import numpy as np
import pytest

from dedkit.errors import DedkitError
from dedkit.io import read_shifts_csv, write_frc_csv, write_motioncorr_star, write_shifts_csv
from dedkit.metrics import frc

starfile = pytest.importorskip("starfile")


def no_temporaries(folder):
    return not [p for p in folder.iterdir() if ".part-" in p.name]


# ------------------------------------------------------------------------- shifts CSV


def test_shifts_round_trip_exactly_with_1_based_frames(tmp_path):
    shifts = np.random.default_rng(1).normal(scale=3.0, size=(40, 2))
    path = write_shifts_csv(tmp_path / "s.csv", shifts)
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["frame", "dx", "dy"]
    assert [int(r[0]) for r in rows[1:]] == list(range(1, 41))
    assert np.array_equal(read_shifts_csv(path), shifts)
    assert no_temporaries(tmp_path)


def test_shifts_csv_refuses_to_overwrite_without_force(tmp_path):
    path = tmp_path / "s.csv"
    write_shifts_csv(path, [[0.0, 0.0]])
    with pytest.raises(DedkitError, match="use --force"):
        write_shifts_csv(path, [[1.0, 1.0]])
    assert read_shifts_csv(path).tolist() == [[0.0, 0.0]]
    write_shifts_csv(path, [[1.0, 1.0]], force=True)
    assert read_shifts_csv(path).tolist() == [[1.0, 1.0]]
    with pytest.raises(DedkitError, match="same file as an input"):
        write_shifts_csv(path, [[1.0, 1.0]], force=True, inputs=[path])


def test_read_shifts_any_order_extra_columns_and_spaces(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("DX, frame ,dy,note\n 2.5,2,-1,x\n-2.5,1,1,y\n\n")
    assert read_shifts_csv(path).tolist() == [[-2.5, 1.0], [2.5, -1.0]]


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "empty"),
        ("frame,dx\n1,0\n", "missing dy"),
        ("frame,dx,dy\n", "lists no frames"),
        ("frame,dx,dy\n1,0,a\n", r":2: expected a frame number"),
        ("frame,dx,dy\n1,0,0\n1,1,1\n", r":3: frame 1 is listed twice"),
        ("frame,dx,dy\n0,0,0\n1,1,1\n", "1-based"),
        ("frame,dx,dy\n1,0,0\n3,1,1\n", "numbered 1 to 2"),
        ("frame,dx,dy\n1,nan,0\n", "not a finite"),
    ],
)
def test_bad_shifts_csv_names_file(tmp_path, text, match):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DedkitError, match=match) as error:
        read_shifts_csv(path)
    assert str(error.value).startswith(str(path))


def test_bad_shifts_are_refused_before_writing(tmp_path):
    for shifts in ([1.0, 2.0], np.zeros((0, 2)), [[np.nan, 0.0]]):
        with pytest.raises(DedkitError, match="shifts"):
            write_shifts_csv(tmp_path / "s.csv", shifts)
    assert not list(tmp_path.iterdir())


# -------------------------------------------------------------------------- FRC CSV


def test_frc_csv_of_a_real_curve(tmp_path):
    rng = np.random.default_rng(2)
    signal = rng.normal(size=(64, 64))
    curve = frc(signal + rng.normal(size=signal.shape), signal + rng.normal(size=signal.shape))
    path = write_frc_csv(tmp_path / "frc.csv", curve, pixel_size=1.25)
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == curve.frequency.size
    assert list(rows[0]) == [
        "ring",
        "frequency_per_pixel",
        "frequency_per_angstrom",
        "resolution_angstrom",
        "frc",
        "half_bit_threshold",
        "n_pixels",
    ]
    per_pixel = np.array([float(r["frequency_per_pixel"]) for r in rows])
    assert np.allclose(per_pixel, curve.frequency / 2)
    assert per_pixel.max() <= 0.5
    last = rows[-1]
    assert float(last["frequency_per_angstrom"]) == pytest.approx(per_pixel[-1] / 1.25)
    assert float(last["resolution_angstrom"]) == pytest.approx(1.25 / per_pixel[-1])
    assert rows[0]["resolution_angstrom"] == ""
    assert np.allclose([float(r["frc"]) for r in rows], curve.frc, equal_nan=True)
    assert np.allclose([float(r["half_bit_threshold"]) for r in rows], curve.threshold)
    assert [int(r["n_pixels"]) for r in rows] == curve.n_pixels.tolist()
    # without a pixel size only the per-pixel frequency is given
    path = write_frc_csv(tmp_path / "frc2.csv", curve)
    assert "frequency_per_angstrom" not in path.read_text().splitlines()[0]


# ------------------------------------------------------------------------ RELION STAR


def relion_polynomial(coeffs, z, x, y):
    """The model as RELION's ThirdOrderPolynomialModel::getShiftAt evaluates it."""
    c = coeffs
    x2, y2, xy, z2, z3 = x * x, y * y, x * y, z * z, z * z * z
    return (
        (c[0] * z + c[1] * z2 + c[2] * z3)
        + (c[3] * z + c[4] * z2 + c[5] * z3) * x
        + (c[6] * z + c[7] * z2 + c[8] * z3) * x2
        + (c[9] * z + c[10] * z2 + c[11] * z3) * y
        + (c[12] * z + c[13] * z2 + c[14] * z3) * y2
        + (c[15] * z + c[16] * z2 + c[17] * z3) * xy
    )


def test_star_file_reads_back_with_starfile(tmp_path):
    rng = np.random.default_rng(3)
    n, ny, nx = 12, 4092, 5760
    shifts = np.cumsum(rng.normal(size=(n, 2)), axis=0)
    shifts -= shifts.mean(axis=0)
    # a residual field that is exactly RELION's polynomial (in RELION's sign), plus a
    # per-patch constant that re-referencing to the first frame must remove
    cx, cy = np.meshgrid(np.linspace(500, 5200, 5), np.linspace(400, 3700, 5))
    centres = np.column_stack([cx.ravel(), cy.ravel()])
    coeff_x, coeff_y = rng.normal(scale=0.05, size=(2, 18))
    z = np.arange(n)[:, None]
    xn, yn = centres[:, 0] / nx - 0.5, centres[:, 1] / ny - 0.5
    residual = np.stack(
        [-relion_polynomial(coeff_x, z, xn, yn), -relion_polynomial(coeff_y, z, xn, yn)],
        axis=-1,
    ) + rng.normal(size=(1, 25, 2))
    weights = np.ones(25)
    weights[7] = 0.0  # a patch without signal: left out
    local = {"patch_centres": centres, "patch_shifts": residual, "patch_weights": weights}
    path = write_motioncorr_star(
        tmp_path / "movie.star",
        movie_name="Movies/movie 001.tif",
        shifts=shifts,
        n_frames=n,
        shape=(ny, nx),
        pixel_size=0.4135,
        voltage_kv=300,
        dose_per_frame=0.8,
        pre_dose=1.5,
        binning=2,
        gain="Movies/gain.mrc",
        defects="defects.txt",
        local=local,
    )
    assert no_temporaries(tmp_path)
    star = starfile.read(path, always_dict=True)
    assert list(star) == ["general", "global_shift", "local_motion_model", "local_shift"]
    general = star["general"]
    assert general == {
        "rlnImageSizeX": nx,
        "rlnImageSizeY": ny,
        "rlnImageSizeZ": n,
        "rlnMicrographMovieName": "Movies/movie 001.tif",
        "rlnMicrographGainName": "Movies/gain.mrc",
        "rlnMicrographDefectFile": "defects.txt",
        "rlnMicrographBinning": 2.0,
        "rlnMicrographOriginalPixelSize": 0.4135,
        "rlnMicrographDoseRate": 0.8,
        "rlnMicrographPreExposure": 1.5,
        "rlnVoltage": 300.0,
        "rlnMicrographStartFrame": 1,
        "rlnMotionModelVersion": 1,
    }
    glob = star["global_shift"]
    assert glob["rlnMicrographFrameNumber"].tolist() == list(range(1, n + 1))
    # RELION's shift is the one applied to the frame: minus the specimen's displacement
    assert np.allclose(glob["rlnMicrographShiftX"], -shifts[:, 0], atol=1e-6)
    assert np.allclose(glob["rlnMicrographShiftY"], -shifts[:, 1], atol=1e-6)

    model = star["local_motion_model"]
    assert model["rlnMotionModelCoeffsIdx"].tolist() == list(range(36))
    coeffs = model["rlnMotionModelCoeff"].to_numpy()
    assert np.allclose(coeffs[:18], coeff_x, atol=1e-6)
    assert np.allclose(coeffs[18:], coeff_y, atol=1e-6)

    tracks = star["local_shift"]
    assert len(tracks) == 24 * n
    assert not np.any(
        np.isclose(tracks["rlnCoordinateX"], centres[7, 0])
        & np.isclose(tracks["rlnCoordinateY"], centres[7, 1])
    )
    first = tracks[tracks["rlnMicrographFrameNumber"] == 1]
    assert np.allclose(first[["rlnMicrographShiftX", "rlnMicrographShiftY"]], 0)
    row = tracks.iloc[n + 5]  # second written patch (index 1), frame 6
    assert row["rlnMicrographFrameNumber"] == 6
    assert row["rlnCoordinateX"] == pytest.approx(centres[1, 0])
    expected = -(residual[5, 1] - residual[0, 1])
    assert row["rlnMicrographShiftX"] == pytest.approx(expected[0], abs=1e-6)
    assert row["rlnMicrographShiftY"] == pytest.approx(expected[1], abs=1e-6)


def test_star_takes_a_local_motion_object_and_skips_a_model_with_too_few_values(tmp_path):
    from types import SimpleNamespace

    # 3 frames x 4 patches = 12 tracks of which the first frame is 0: too few for 18 terms
    local = SimpleNamespace(
        patch_centres=np.array([[10.0, 10.0], [90.0, 10.0], [10.0, 40.0], [90.0, 40.0]]),
        patch_shifts=np.random.default_rng(4).normal(size=(3, 4, 2)),
        patch_weights=np.ones(4),
    )
    path = write_motioncorr_star(
        tmp_path / "m.star",
        movie_name="m.mrc",
        shifts=np.zeros((3, 2)),
        n_frames=3,
        shape=(50, 100),
        pixel_size=1.0,
        voltage_kv=300,
        dose_per_frame=1.0,
        pre_dose=0.0,
        binning=1,
        local=local,
    )
    star = starfile.read(path, always_dict=True)
    assert list(star) == ["general", "global_shift", "local_shift"]
    assert star["general"]["rlnMotionModelVersion"] == 0
    assert len(star["local_shift"]) == 12


def test_star_without_local_motion_has_model_version_0(tmp_path):
    path = write_motioncorr_star(
        tmp_path / "m.star",
        movie_name="m.mrc",
        shifts=[[0.0, 0.0], [0.5, -0.5]],
        n_frames=2,
        shape=(100, 200),
        pixel_size=1.0,
        voltage_kv=200,
        dose_per_frame=1.0,
        pre_dose=0.0,
        binning=1,
    )
    star = starfile.read(path, always_dict=True)
    assert list(star) == ["general", "global_shift"]
    assert star["general"]["rlnMotionModelVersion"] == 0
    assert "rlnMicrographGainName" not in star["general"]
    assert "-0.000000" not in path.read_text()


@pytest.mark.parametrize(
    "change, match",
    [
        ({"n_frames": 3}, "2 shifts for a movie of 3 frames"),
        ({"shape": (0, 5)}, "shape"),
        ({"pixel_size": 0}, "positive pixel size"),
        ({"voltage_kv": None}, "voltage"),
        ({"movie_name": 'a"b.mrc'}, "cannot be written"),
        ({"local": {"patch_centres": np.zeros((4, 2))}}, "patch_shifts"),
        (
            {"local": {"patch_centres": np.zeros((4, 2)), "patch_shifts": np.zeros((3, 4, 2))}},
            "do not fit 2 frames",
        ),
    ],
)
def test_star_bad_input_writes_nothing(tmp_path, change, match):
    args = (
        dict(
            movie_name="m.mrc",
            shifts=[[0.0, 0.0], [0.5, -0.5]],
            n_frames=2,
            shape=(100, 200),
            pixel_size=1.0,
            voltage_kv=300,
            dose_per_frame=1.0,
            pre_dose=0.0,
            binning=1,
        )
        | change
    )
    with pytest.raises(DedkitError, match=match):
        write_motioncorr_star(tmp_path / "m.star", **args)
    assert not list(tmp_path.iterdir())


def test_star_refuses_existing_output_without_force(tmp_path):
    path = tmp_path / "m.star"
    path.write_text("mine")
    args = dict(
        movie_name="m.mrc",
        shifts=[[0.0, 0.0]],
        n_frames=1,
        shape=(10, 10),
        pixel_size=1.0,
        voltage_kv=300,
        dose_per_frame=1.0,
        pre_dose=0.0,
        binning=1,
    )
    with pytest.raises(DedkitError, match="use --force"):
        write_motioncorr_star(path, **args)
    assert path.read_text() == "mine"
    write_motioncorr_star(path, force=True, **args)
    assert starfile.read(path, always_dict=True)["general"]["rlnImageSizeZ"] == 1

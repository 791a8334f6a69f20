"""Issue 13 item 16: every real file written by other software, read against its reference.

The files live outside the repository, in ``shared/cases/external/`` next to the checkout
(``SOURCES.md`` there names where each comes from); every test here is skipped when the
folder is absent. Each file is either read exactly as the reference library named in
SOURCES.md reads it, or refused with one line (a :class:`DedkitError`) under a decision
recorded in the tables below, never with another exception:

- MRC against mrcfile: data and voxel size, with no flip (MRC and dedkit both keep row 0
  at the bottom). A negative or zero cell (DE-Server writes -10 A per pixel for "not
  calibrated") gives no pixel size; a zero Z cell gives z = 0 (item 14).
- TIFF against tifffile, page by page, flipped (TIFF stores row 0 at the top). dedkit
  reads single-channel uint8, int16, uint16 and float32 pages, the frame types of
  counting cameras; other sample types, several samples per pixel and pages that differ
  within a file are refused by name.
- DM3/DM4 against ncempy, flipped like TIFF; units and pixel size in Angstrom. Types
  dedkit cannot hold (bool, RGB(A), packed complex) and 1-D spectra are refused by name
  (item 15); 3-D datasets open as stacks through ``open_stack`` but are refused by
  ``read_dm``, which reads one reference image.
- mdoc against mdocfile (teamtomo), section by section, and rewritten byte for byte.
- The IMOD defect list (no reference library exists) against a plain independent parse.
- slsDetector masters and runs against aare; aare .clust files against aare's
  ClusterFile. dedkit reads Jungfrau and MÖNCH runs only: Eiger, Mythen3 and
  ChipTestBoard runs are refused by name, after their master files are parsed as aare
  parses them.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from dedkit.errors import DedkitError

EXTERNAL = Path(__file__).resolve().parents[3] / "shared" / "cases" / "external"

pytestmark = pytest.mark.skipif(
    not EXTERNAL.is_dir(), reason=f"external cases not present ({EXTERNAL})"
)


def _files(folder: str, pattern: str = "*") -> list[Path]:
    if not EXTERNAL.is_dir():
        return []
    return sorted(p for p in (EXTERNAL / folder).glob(pattern) if p.is_file())


def _ids(paths):
    return [p.name for p in paths]


def _refused(call, path, pattern, *, names=None):
    """``call(path)`` raises one DedkitError line naming the file (or ``names``) and
    matching ``pattern``."""
    with pytest.raises(DedkitError) as error:
        call(path)
    message = str(error.value)
    assert "\n" not in message
    assert str(names or path) in message
    assert re.search(pattern, message), message
    return message


# ----- MRC: mrcfile ------------------------------------------------------------------

MRC_FILES = _files("mrc")


@pytest.mark.parametrize("path", MRC_FILES, ids=_ids(MRC_FILES))
def test_issue13_item16_mrc_equals_mrcfile(path):
    import mrcfile

    from dedkit.io.stack import open_stack

    with mrcfile.open(path, permissive=True) as ref:
        data = np.asarray(ref.data)
        voxel = tuple(float(v) for v in (ref.voxel_size.x, ref.voxel_size.y, ref.voxel_size.z))
    with open_stack(path) as stack:
        info = stack.info
        frames = np.stack([stack.read(i) for i in range(len(stack))])
    assert frames.dtype == data.dtype
    np.testing.assert_array_equal(frames, data.reshape(frames.shape))
    if voxel[0] > 0 and voxel[1] > 0:
        assert info.pixel_size == pytest.approx((voxel[0], voxel[1], max(voxel[2], 0.0)))
    else:
        assert info.pixel_size is None


# ----- TIFF: tifffile ----------------------------------------------------------------

#: file -> why dedkit refuses it (the documented decision, as a pattern of the message)
TIFF_REFUSED = {
    "imagecodecs_gray.b1.tif": r"1-bit bool pages are not supported",
    "imagecodecs_gray.i1.tif": r"8-bit int8 pages are not supported",
    "imagecodecs_gray.u4.tif": r"32-bit uint32 pages are not supported",
    "imagecodecs_gray.f2.tif": r"16-bit float16 pages are not supported",
    "rsciio_test_loading_image_saved_with_DM.tif": r"32-bit int32 pages are not supported",
    "imagecodecs_gray.contig.u1.tif": r"not single-channel 2-D images",
    "imagecodecs_gray.separate.u1.tif": r"not single-channel 2-D images",
    "imagecodecs_gray.depth.u1.tif": r"not single-channel 2-D images",
    "imagecodecs_rgb.predict.u1.tif": r"not single-channel 2-D images",
    "imagecodecs_rgb.tiled.lzw.u1.tif": r"not single-channel 2-D images",
    "imagecodecs_gray.series.u1.tif": r"all pages of a frame stack must match",
    "rsciio_olympus_SIS.tif": r"all pages of a frame stack must match",
}
TIFF_FILES = _files("tiff")
TIFF_READ = [p for p in TIFF_FILES if p.name not in TIFF_REFUSED]


@pytest.mark.parametrize("path", TIFF_READ, ids=_ids(TIFF_READ))
def test_issue13_item16_tiff_equals_tifffile_flipped(path):
    import tifffile

    from dedkit.io.stack import open_stack

    with tifffile.TiffFile(path) as tiff:
        pages = [page.asarray() for page in tiff.pages]
    with open_stack(path) as stack:
        assert stack.info.nz == len(pages)
        for index, page in enumerate(pages):
            frame = stack.read(index)
            assert frame.dtype == page.dtype
            np.testing.assert_array_equal(frame, np.flipud(page))


def test_issue13_item16_imagej_pixel_size():
    """ImageJ's unit and resolution give the pixel size: 1 / XResolution microns."""
    import tifffile

    from dedkit.io.stack import open_stack

    for name in (
        "rsciio_test_loading_image_saved_with_imageJ.tif",
        "rsciio_test_loading_image_saved_with_imageJ_stack.tif",
    ):
        path = EXTERNAL / "tiff" / name
        with tifffile.TiffFile(path) as tiff:
            assert tiff.imagej_metadata["unit"] in ("micron", "\\u00B5m", "\u00b5m")
            x_res, y_res = tiff.pages[0].resolution
        with open_stack(path) as stack:
            assert stack.info.pixel_size[:2] == pytest.approx((1e4 / x_res, 1e4 / y_res))


@pytest.mark.parametrize("name", sorted(TIFF_REFUSED))
def test_issue13_item16_tiff_refused_by_name(name):
    from dedkit.io.stack import open_stack

    path = EXTERNAL / "tiff" / name
    if not path.is_file():
        pytest.skip(f"{name} not present")
    _refused(open_stack, path, TIFF_REFUSED[name])


# ----- DM: ncempy --------------------------------------------------------------------

#: Angstrom per unit, independent of dedkit's table
_ANGSTROM = {"A": 1.0, "\u00c5": 1.0, "pm": 0.01, "nm": 10.0, "um": 1e4, "\u00b5m": 1e4}

DM_REFUSED = {
    "rsciio_2D_test-14.dm3": r"unsupported DM data type 14 \(bool\)",
    "rsciio_2D_test-14.dm4": r"unsupported DM data type 14 \(bool\)",
    "rsciio_2D_test-23.dm3": r"unsupported DM data type 23 \(RGBA colour\)",
    "rsciio_2D_test-23.dm4": r"unsupported DM data type 23 \(RGBA colour\)",
    "rsciio_2D_test-8.dm3": r"unsupported DM data type 23 \(RGBA colour\)",
    "rsciio_2D_test-8.dm4": r"unsupported DM data type 23 \(RGBA colour\)",
    "rsciio_2D_test_fft_packed_complex8.dm4": r"unsupported DM data type 27 \(packed complex",
    "rsciio_1D_test-1.dm3": r"1-D data \(2 values: a spectrum or profile\), not an image",
    "ncempy_08_carbon.dm3": r"1-D data \(1 x 2048 values: a spectrum or profile\)",
}
DM_FILES = _files("dm")
DM_READ = [p for p in DM_FILES if p.name not in DM_REFUSED]


def _ncempy(path):
    from ncempy.io import dm

    with dm.fileDM(path, on_memory=True) as file:
        dataset = file.getDataset(0)
    units = [str(u) for u in dataset["pixelUnit"]][::-1]  # ncempy: C order, z y x
    scale = [float(s) for s in dataset["pixelSize"]][::-1]
    return dataset["data"], units, scale


@pytest.mark.parametrize("path", DM_READ, ids=_ids(DM_READ))
def test_issue13_item16_dm_equals_ncempy_flipped(path):
    from dedkit.io.dm import read_dm
    from dedkit.io.stack import open_stack

    data, units, scale = _ncempy(path)
    with open_stack(path) as stack:
        frames = np.stack([stack.read(i) for i in range(len(stack))])
        info = stack.info
    expected = data[np.newaxis] if data.ndim == 2 else data
    assert frames.dtype == data.dtype
    np.testing.assert_array_equal(frames, expected[:, ::-1])
    assert info.extra["units"] == [u.strip() for u in units]
    factors = [_ANGSTROM.get(u.strip()) for u in units[:2]]
    if None in factors:
        assert info.pixel_size is None
    else:
        assert info.pixel_size == pytest.approx((scale[0] * factors[0], scale[1] * factors[1], 0.0))
    if data.ndim == 2:
        image = read_dm(path)
        np.testing.assert_array_equal(image.data, np.flipud(data))
        assert image.pixel_size == (None if info.pixel_size is None else info.pixel_size[:2])
    else:
        _refused(read_dm, path, r"3-D dataset .* expected one image")


@pytest.mark.parametrize("name", sorted(DM_REFUSED))
def test_issue13_item16_dm_refused_by_name(name):
    from dedkit.io.dm import read_dm
    from dedkit.io.stack import open_stack

    path = EXTERNAL / "dm" / name
    if not path.is_file():
        pytest.skip(f"{name} not present")
    for reader in (read_dm, open_stack):
        message = _refused(reader, path, DM_REFUSED[name])
        assert "corrupt" not in message


# ----- mdoc: mdocfile ----------------------------------------------------------------

MDOC_FILES = _files("mdoc")
_SECTION_KINDS = ("ZValue", "FrameSet", "MontSection")
#: keys mdocfile renames
_MDOCFILE_NAMES = {"FrameDosesAndNumber": "FrameDosesAndNumbers"}


def _numbers(value):
    """The numbers of an mdocfile value (a number, bool or tuple), or None for text."""
    items = value if isinstance(value, (tuple, list)) else (value,)
    kinds = (int, float, np.integer, np.floating)
    if not items or not all(isinstance(v, kinds) and not isinstance(v, bool) for v in items):
        return None
    return [float(v) for v in items]


@pytest.mark.parametrize("path", MDOC_FILES, ids=_ids(MDOC_FILES))
def test_issue13_item16_mdoc_equals_mdocfile(path):
    mdocfile = pytest.importorskip("mdocfile", reason="mdocfile not installed (test extra)")
    from dedkit.io.mdoc import format_mdoc, read_mdoc

    frame = mdocfile.read(path)
    mdoc = read_mdoc(path)
    # mdocfile keeps the [T = ...] title sections in a 'titles' column, not as rows
    sections = [s for s in mdoc.sections if s.kind != "T"]
    assert len(sections) == len(frame)
    compared = 0
    for section, (_, row) in zip(sections, frame.iterrows(), strict=True):
        assert section.kind in _SECTION_KINDS
        assert int(row[section.kind]) == int(section.value)
        for key in section:
            column = _MDOCFILE_NAMES.get(key, key)
            if column not in row.index:
                continue
            value = row[column]
            numbers = _numbers(value)
            if isinstance(value, (bool, np.bool_)) or numbers is None:
                if isinstance(value, str):
                    assert section[key].strip() == value.strip(), key
                    compared += 1
                continue
            mine = [float(v) for v in section[key].split()]
            if key == "FrameDosesAndNumber":
                mine = mine[: len(numbers)]
            assert mine == pytest.approx(numbers, nan_ok=True), (section.value, key)
            compared += 1
    assert compared >= 4 * len(frame)
    assert format_mdoc(mdoc).encode("utf-8", "surrogateescape") == path.read_bytes()


# ----- defect list: independent parse ------------------------------------------------

DEFECT_FILES = _files("defects")


@pytest.mark.parametrize("path", DEFECT_FILES, ids=_ids(DEFECT_FILES))
def test_issue13_item16_defect_list_equals_plain_parse(path):
    """No library reads SerialEM defect lists: the keyword lines are parsed plainly here."""
    from dedkit.io.defects import read_defects

    plain: dict[str, list[list[int]]] = {}
    for line in path.read_text().splitlines():
        words = line.split()
        if words and not words[0].startswith("#"):
            plain.setdefault(words[0], []).append([int(w) for w in words[1:]])
    defects = read_defects(path)
    assert [[defects.camera_size_x]] == plain["CameraSizeX"]
    assert [[defects.camera_size_y]] == plain["CameraSizeY"]
    assert defects.bad_columns == [v for values in plain.get("BadColumns", []) for v in values]
    assert defects.bad_rows == [v for values in plain.get("BadRows", []) for v in values]
    flat = [v for values in plain.get("BadPixels", []) for v in values]
    assert defects.bad_pixels == list(zip(flat[0::2], flat[1::2], strict=True))
    assert [list(p) for p in defects.partial_bad_columns] == plain.get("PartialBadColumn", [])


# ----- slsDetector runs and .clust files: aare ----------------------------------------

MASTER_FILES = _files("sls", "*/*_master_*")
#: master -> why its run is not read (the master itself is parsed)
RUN_REFUSED = {
    "eiger_500k_16bit_master_0.json": r"Eiger runs are not supported",
    "eiger_500k_32bit_master_0.json": r"Eiger runs are not supported",
    "m3_master_0.json": r"Mythen3 runs are not supported",
    "scan242_master_3.raw": r"Mythen3 runs are not supported",
    "moench04_noise_200V_sto_both_100us_no_light_thresh_900_master_0.raw": (
        r"ChipTestBoard runs are not supported"
    ),
    # the documentation's example master comes without data files (aare fails alike)
    "moench_docs_master_0.json": r"data file not found",
}


@pytest.mark.parametrize("path", MASTER_FILES, ids=_ids(MASTER_FILES))
def test_issue13_item16_sls_master_and_run_against_aare(path):
    aare = pytest.importorskip("aare", reason="aare (PSI) is not installed")
    from dedkit.io.sls import RawRun, read_master

    reference = aare.RawMasterFile(str(path))
    master = read_master(path)
    assert str(reference.detector_type).split(".")[-1].startswith(master.detector_type)
    assert master.total_frames == reference.total_frames_expected
    assert master.max_frames_per_file == reference.max_frames_per_file
    if master.detector_type != "ChipTestBoard":  # aare reports bit depth 0 for a CTB
        assert master.bit_depth == reference.bitdepth
    if path.name in RUN_REFUSED:
        _refused(RawRun, path, RUN_REFUSED[path.name], names=path.parent)
        return
    raw = aare.RawFile(str(path))  # pragma: no cover - no such run among the files yet
    _, frames = raw.read()
    np.testing.assert_array_equal(RawRun(path).read().frames, frames)


def test_issue13_item16_sls_data_files_belong_to_a_master():
    """Each raw data file is read (or refused) through its run's master above."""
    masters = {re.sub(r"_master_\d+\.\w+$", "", p.name) for p in MASTER_FILES}
    for data in _files("sls", "*/*_d[0-9]*_f*"):
        assert re.sub(r"_d\d+_f\d+_\d+\.raw$", "", data.name) in masters, data.name


def test_issue13_item16_clust_equals_aare():
    aare = pytest.importorskip("aare", reason="aare (PSI) is not installed")
    from dedkit.io.clust import read_clust

    path = EXTERNAL / "clust" / "single_frame_97_clustrers.clust"
    table = read_clust(path)
    reference = aare.ClusterFile(str(path), cluster_size=(3, 3), dtype=np.int32)
    vector = reference.read_frame()
    records = np.array(vector)
    assert len(table) == 97 == len(records)
    assert (table.frame == vector.frame_number).all()
    np.testing.assert_array_equal(table.x, records["x"])
    np.testing.assert_array_equal(table.y, records["y"])
    np.testing.assert_array_equal(
        table.data.reshape(len(table), -1), records["data"].reshape(len(records), -1)
    )


def test_issue13_item16_clust_v3_refused_in_one_line():
    """aare's experimental 'CLST' + JSON format (v3) is not the .clust dedkit reads."""
    from dedkit.io.clust import read_clust

    _refused(read_clust, EXTERNAL / "clust" / "test_cluster.clust2", r".")


def test_issue13_item16_clust_v3_named():
    from dedkit.io.clust import read_clust

    _refused(read_clust, EXTERNAL / "clust" / "test_cluster.clust2", r"CLST|version|format")


# ----- nothing left out --------------------------------------------------------------


def test_issue13_item16_every_external_file_is_covered():
    """A file added to the folder must be added to a test above (or to a decision)."""
    covered = set(MRC_FILES + TIFF_FILES + DM_FILES + MDOC_FILES + DEFECT_FILES + MASTER_FILES)
    covered |= set(_files("sls", "*/*_d[0-9]*_f*")) | set(_files("clust"))
    everything = {p for p in EXTERNAL.rglob("*") if p.is_file() and p.name != "SOURCES.md"}
    assert everything - covered == set()

"""Camera defect correction as IMOD does it (being split into modules; see prepare)."""

from dedkit.frames.defects.prepare import (
    DefectCorrector,
    DefectGeometry,
    GoodArea,
    PreparedDefects,
    correct_defects,
    defect_map,
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

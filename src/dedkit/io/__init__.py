"""File formats: reading and writing only, no processing.

Every format is one module (a subpackage for slsDetector runs); this package exports the
names a user needs, imported on first use (``import dedkit.io`` is instant):

- frame stacks of counting cameras, any format (:mod:`~dedkit.io.stack`):
  :func:`open_stack`, :func:`create_stack`, :class:`StackInfo`; single images (gain
  references, defect maps) :func:`read_image`; the formats themselves: MRC
  (:mod:`~dedkit.io.mrc`), TIFF and numbered folders (:mod:`~dedkit.io.tiff`), DM3/DM4
  (:mod:`~dedkit.io.dm`), Falcon EER movies (:mod:`~dedkit.io.eer`), the 4-bit codec
  (:mod:`~dedkit.io.pack`);
- SerialEM's side files: frame titles (:mod:`~dedkit.io.titles`), ``.mdoc``
  (:mod:`~dedkit.io.mdoc`), defect lists (:mod:`~dedkit.io.defects`);
- hybrid-pixel detectors: slsDetector raw runs (:mod:`~dedkit.io.sls`), aare ``.clust``
  files (:mod:`~dedkit.io.clust`), cluster and event tables in HDF5
  (:mod:`~dedkit.io.events`), pedestal and gain files (:mod:`~dedkit.io.calibration`);
- frame alignment's side files (:mod:`~dedkit.io.motion_files`): shifts and FRC CSV,
  RELION's per-movie motion STAR file (:func:`write_motioncorr_star`);
- simulations and learning: Geant4 deposits (:mod:`~dedkit.io.deposits`), training sets
  (:mod:`~dedkit.io.training`), CNN model files (:mod:`~dedkit.io.model_files`);
- the output rules every writer follows (:mod:`~dedkit.io.atomic`): :func:`check_outputs`,
  :func:`atomic_output`, :func:`write_atomic`.

Examples
--------
>>> import dedkit.io
>>> dedkit.io.open_stack.__module__
'dedkit.io.stack'
"""

from dedkit._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "atomic": ["atomic_output", "check_outputs", "write_atomic"],
        "calibration": [
            "read_gain_map",
            "read_pedestal_file",
            "write_gain_map",
            "write_pedestal_file",
        ],
        "clust": ["ClustWriter", "iter_clust", "read_clust", "write_clust"],
        "defects": ["format_defects", "parse_defects", "read_defects", "write_defects"],
        "deposits": ["DepositsWriter", "read_deposits", "write_deposits"],
        "dm": ["DmReader", "read_dm"],
        "eer": ["EerReader", "read_eer_gain", "write_eer"],
        "events": ["TableWriter", "read_attrs", "read_table", "write_table"],
        "figures": ["save_figure"],
        "header_stats": ["FrameStats", "frame_stats"],
        "images": ["image_shape", "read_image"],
        "mdoc": ["Mdoc", "format_mdoc", "parse_mdoc", "read_mdoc", "write_mdoc"],
        "movies": ["MOVIE_SUFFIXES", "expand_inputs", "movie_complete"],
        "model_files": ["read_card_file", "read_weights", "save_model"],
        "motion_files": [
            "read_shifts_csv",
            "write_frc_csv",
            "write_motioncorr_star",
            "write_shifts_csv",
        ],
        "mrc": ["MrcReader", "MrcWriter", "read_header"],
        "pack": ["PackResult", "convert_dtype", "pack_4bit", "unpack_nibbles"],
        "sls": ["MissingPackets", "RawMaster", "RawRun", "read_master", "write_raw_run"],
        "stack": ["FrameReader", "FrameWriter", "StackInfo", "create_stack", "open_stack"],
        "tiff": ["FolderReader", "FolderWriter", "TiffReader", "TiffWriter"],
        "titles": ["FrameTitleInfo", "format_frame_titles", "parse_frame_titles"],
        "training": ["TrainingSetWriter", "read_training_set"],
    },
)

"""End-to-end jobs behind the command line: open inputs, stream frames through
:mod:`dedkit.frames` (or runs through :mod:`dedkit.hpd`), write outputs atomically, and
return a report (a :class:`dedkit.report.JobReport`).

Each job is an ordinary Python function, so everything the ``dedkit`` command does can be
done from Python with the same options and the same report. The names are imported on
first use (the hpd and learn jobs pull in Dask and PyTorch):

- frame alignment (:mod:`~dedkit.jobs.align`): :func:`align_movie` (``dedkit align``);
- whole sessions (:mod:`~dedkit.jobs.session`, :mod:`~dedkit.jobs.watch`,
  :mod:`~dedkit.jobs.session_report`): :func:`run_session` (``dedkit align INPUT... -o
  FOLDER/``, ``--watch``), :class:`MovieWatcher`, :func:`render_session_report`;
- counting-camera stacks (:mod:`~dedkit.jobs.stacks`, :mod:`~dedkit.jobs.reduce`):
  :func:`normalize_stack` (``dedkit norm``), :func:`rotflip_stack`, :func:`pack_stack`,
  :func:`unpack_stack`, :func:`convert_stack`, :func:`make_defect_map`,
  :func:`describe_stack` (``dedkit header``), :func:`reduce_stack`;
- hybrid-pixel runs (:mod:`~dedkit.jobs.hpd`): :func:`compute_pedestal`,
  :func:`find_clusters_in_run`, :func:`localize_clusters`, :func:`make_image`;
- simulations (:mod:`~dedkit.jobs.sim`, :mod:`~dedkit.jobs.electrons`):
  :func:`write_simulated_run`, :func:`build_training_set`,
  :func:`simulate_electrons_to_file`;
- the CNN (:mod:`~dedkit.jobs.learn`): :func:`train_model`, :func:`evaluate_model`,
  :func:`write_scan_training_set`;
- :func:`run_demo`, :func:`write_samples` (:mod:`~dedkit.jobs.demo`) and
  :func:`run_study`, :func:`write_study_figure` (:mod:`~dedkit.jobs.study`).

Examples
--------
>>> from dedkit.jobs import normalize_stack
>>> normalize_stack.__module__
'dedkit.jobs.stacks'
"""

from dedkit._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "align": ["align_movie"],
        "cache": ["cache_dir", "cache_path", "cached_npz"],
        "demo": ["run_demo", "write_samples"],
        "demo_camera": ["run_camera_demo"],
        "demo_part": ["DemoCheck", "DemoPart"],
        "electrons": ["simulate_electrons_to_file"],
        "gold": ["process_gold_run", "run_gold_demo", "simulate_gold_run"],
        "hpd": ["compute_pedestal", "describe_run", "find_clusters_in_run",
                "localize_clusters", "make_image"],
        "learn": ["evaluate_model", "train_model", "write_scan_training_set"],
        "reduce": ["reduce_stack"],
        "session": ["run_session"],
        "session_report": ["render_session_report", "spectrum_thumbnail",
                           "write_session_report"],
        "sim": ["build_training_set", "write_simulated_run"],
        "specimen": ["read_specimen", "specimen_image", "write_specimen"],
        "stacks": ["convert_stack", "describe_stack", "make_defect_map", "normalize_stack",
                   "pack_stack", "rotflip_stack", "unpack_stack"],
        "study": ["run_study", "write_study_figure"],
        "tracks": ["track_library"],
        "watch": ["MovieWatcher"],
    },
)  # fmt: skip

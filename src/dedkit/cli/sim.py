"""``dedkit sim``: detector simulation (Geant4 electron transport, MÖNCH response).

Geant4 (``geant4-pybind``) is optional: nothing here imports it; the commands that need it
say so in one line when it is missing.
"""

from __future__ import annotations

import importlib.util

import click

from dedkit.cli.options import (
    choice_option,
    chunk_option,
    count_option,
    float_option,
    force_option,
    job_options,
    json_option,
    optional_option,
    output_option,
    path_option,
    quiet_option,
    seed_option,
    workers_option,
)
from dedkit.cli.output import run_job
from dedkit.errors import DedkitError
from dedkit.records.sensor import (
    DEFAULT_NX,
    DEFAULT_NY,
    DEFAULT_PITCH_UM,
    DEFAULT_THICKNESS_UM,
    SensorGeometry,
)
from dedkit.sim.beam import DEFAULT_SPOT_SIGMA_PX
from dedkit.sim.charge import ChargeModel
from dedkit.sim.response import DetectorResponse
from dedkit.sim.transport import (
    DEFAULT_CUT_UM,
    DEFAULT_PHYSICS,
    DEFAULT_SEGMENT_UM,
    ENTRIES,
    MSC_STEP_LIMITS,
    NEEDS_DATA,
    PHYSICS_LISTS,
    TransportSettings,
    check_physics,
)


class _PhysicsList(click.ParamType):
    """``--physics`` of every command that runs Geant4, checked as the transport checks
    it, before any work (issue 13 item 12: ``sim frames`` accepted any name that ``sim
    electrons`` refused)."""

    name = "physics list"

    def get_metavar(self, param, *args, **kwargs) -> str:
        return "[" + "|".join(PHYSICS_LISTS) + "]"

    def convert(self, value, param, ctx):
        try:
            return check_physics(value)
        except DedkitError as e:
            self.fail(str(e), param, ctx)


PHYSICS_CHOICE = _PhysicsList()
PHYSICS_HELP = (
    "Geant4 EM physics list ("
    + ", ".join(sorted(NEEDS_DATA))
    + " need Geant4 data sets that geant4-pybind does not ship)."
)

# the options of the sensor and the beam that several sim commands take
physics_option = click.option(
    "--physics", type=PHYSICS_CHOICE, default=DEFAULT_PHYSICS, show_default=True, help=PHYSICS_HELP
)
thickness_option = float_option(
    "--thickness", default=DEFAULT_THICKNESS_UM, help="Sensor thickness, um."
)
pitch_option = float_option("--pitch", default=DEFAULT_PITCH_UM, help="Pixel pitch, um.")
incidence_option = float_option(
    "--incidence",
    default=TransportSettings.incidence_deg,
    help="Angle of incidence from the sensor normal, degrees.",
)
azimuth_option = float_option(
    "--azimuth",
    default=TransportSettings.azimuth_deg,
    help="Azimuth of the plane of incidence from +x, degrees.",
)


def area_option(help: str):
    """``--area W H``: the sensor's size in um (default: the job's)."""
    return click.option("--area", type=(float, float), default=None, metavar="W H", help=help)


def energy_option(help: str, *, default: float | None = None):
    """``-E/--energy``: the beam energy in keV (required unless a default is given)."""
    if default is None:
        return click.option("--energy", "-E", type=float, required=True, help=help)
    return click.option("--energy", "-E", type=float, default=default, show_default=True, help=help)


@click.group()
def sim():
    """Detector simulation: Geant4 electron transport in the silicon sensor, charge
    transport and MÖNCH response."""


# ----- dedkit sim electrons ---------------------------------------------------------------


def _sensor_size(size, area):
    if size is not None and area is not None:
        raise click.UsageError("give --size or --area, not both")
    return size, area


@sim.command("electrons")
@energy_option("Beam energy, keV (1-1000).")
@click.option("--n", "n", type=int, required=True, help="Number of primary electrons.")
@seed_option(required=True, help="Random seed (with the settings it fixes the result).")
@workers_option("Geant4 worker processes (default one per core); the result does not depend on it.")
@physics_option
@click.option(
    "--msc-step-limit",
    default=None,
    help=f"Override the list's msc step limitation: {', '.join(MSC_STEP_LIMITS)}.",
)
@click.option(
    "--cut",
    "cut_um",
    type=float,
    default=DEFAULT_CUT_UM,
    show_default=True,
    help="Production cut, um.",
)
@optional_option(
    "--max-step",
    "max_step_um",
    type=float,
    help="Geant4 step limit in the sensor, um (default none).",
)
@float_option(
    "--segment",
    "segment_um",
    default=DEFAULT_SEGMENT_UM,
    help="Split steps into deposits at most this long, um (0: one deposit per step).",
)
@thickness_option
@pitch_option
@click.option(
    "--size",
    type=(int, int),
    default=None,
    metavar="NX NY",
    help=f"Sensor size in pixels (default {DEFAULT_NX} {DEFAULT_NY}).",
)
@click.option("--nx", type=int, default=None, help="Pixels along x (columns).")
@click.option("--ny", type=int, default=None, help="Pixels along y (rows).")
@area_option("Sensor size in um instead of --size (a whole number of pixels).")
@choice_option(
    "--entry",
    choices=list(ENTRIES),
    default=TransportSettings.entry,
    help="Entry points: uniform over the sensor away from its edges, or uniform in the "
    "centre pixel.",
)
@incidence_option
@azimuth_option
@output_option("OUT.h5 to write.")
@job_options(warn_as=None)
def sim_electrons(
    energy,
    n,
    seed,
    workers,
    physics,
    msc_step_limit,
    cut_um,
    max_step_um,
    segment_um,
    thickness,
    pitch,
    size,
    nx,
    ny,
    area,
    entry,
    incidence,
    azimuth,
    output,
    job,
):
    """Track N electrons of one energy through the sensor with Geant4 and write the
    energy deposits (per electron and per step) to HDF5."""
    from dedkit.jobs.electrons import simulate_electrons_to_file

    size, area = _sensor_size(size, area)
    if size is not None and (nx is not None or ny is not None):
        raise click.UsageError("give --size or --nx/--ny, not both")
    if size is not None:
        nx, ny = size
    sensor = SensorGeometry.from_options(
        thickness_um=thickness, pitch_um=pitch, nx=nx, ny=ny, area_um=area
    )
    settings = TransportSettings(
        energy_keV=energy,
        sensor=sensor,
        physics=physics,
        msc_step_limit=msc_step_limit,
        production_cut_um=cut_um,
        max_step_um=max_step_um,
        segment_um=segment_um,
        entry=entry,
        incidence_deg=incidence,
        azimuth_deg=azimuth,
    )
    job.run("electrons", simulate_electrons_to_file, output, settings, n=n, seed=seed,
            workers=workers)  # fmt: skip


# ----- dedkit sim frames / dataset / validate: charge transport and MÖNCH response ------------


def _detector_options(f):
    """Options shared by the commands that simulate the whole detector."""
    options = [
        thickness_option,
        pitch_option,
        area_option(f"Sensor size in um (default {DEFAULT_NX} x {DEFAULT_NY} pixels)."),
        click.option("--bias", type=float, default=ChargeModel.bias_V, show_default=True,
                     help="Bias, V."),
        click.option("--depletion", type=float, default=ChargeModel.depletion_V,
                     show_default=True, help="Full-depletion voltage, V."),
        click.option("--temperature", type=float, default=ChargeModel.temperature_K,
                     show_default=True, help="Sensor temperature, K."),
        click.option("--noise", type=float, default=DetectorResponse.noise_keV,
                     show_default=True, help="Electronic noise per pixel, keV rms."),
        click.option("--no-coulomb", is_flag=True,
                     help="Leave out the Coulomb repulsion of the charge cloud."),
        physics_option,
        click.option("--cut", "cut_um", type=float, default=None,
                     help=f"Geant4 production cut, um (default: the transport's, "
                          f"{DEFAULT_CUT_UM:g})."),
        incidence_option,
        azimuth_option,
        seed_option(),
        workers_option("Geant4 worker processes (default one per core).",
                       type=click.IntRange(1)),
        json_option,
        quiet_option,
    ]  # fmt: skip
    for option in reversed(options):
        f = option(f)
    return f


def _detector(o: dict):
    """Sensor, charge model, response and transport options from the shared options."""
    sensor = SensorGeometry.from_options(
        thickness_um=o.pop("thickness"), pitch_um=o.pop("pitch"), area_um=o.pop("area")
    )
    model = ChargeModel(
        bias_V=o.pop("bias"),
        depletion_V=o.pop("depletion"),
        temperature_K=o.pop("temperature"),
        coulomb=not o.pop("no_coulomb"),
    )
    response = DetectorResponse(noise_keV=o.pop("noise"))
    transport = {}
    physics, cut = o.pop("physics"), o.pop("cut_um")
    if physics != DEFAULT_PHYSICS:  # the default leaves the transport's settings as they were
        transport["physics"] = physics
    if cut is not None:
        transport["production_cut_um"] = cut
    incidence, azimuth = o.pop("incidence"), o.pop("azimuth")
    if incidence or azimuth:
        transport.update(incidence_deg=incidence, azimuth_deg=azimuth)
    return {"sensor": sensor, "model": model, "response": response,
            "transport_options": transport}  # fmt: skip


def _run(label: str, job, *args, options: dict, **kwargs) -> None:
    """Run a detector job under a progress bar and print its report, with the shared
    ``--json`` and ``--quiet`` popped from ``options`` (warnings as ``dedkit sim: warning:
    ...``, with the text only)."""
    as_json = options.pop("as_json")
    warn_as = None if as_json else "dedkit sim"
    run_job(label, job, *args, quiet=options.pop("quiet"), as_json=as_json, warn_as=warn_as,
            **kwargs)  # fmt: skip


@sim.command("frames")
@energy_option("Beam energy, keV (20-300).")
@click.option(
    "--frames", "n_frames", type=click.IntRange(1), required=True, help="Frames with beam."
)
@click.option("--flux", type=float, required=True, help="Mean electrons per frame (Poisson).")
@choice_option(
    "--pattern",
    choices=["flat", "spot", "scan", "image"],
    default="flat",
    help="Beam intensity pattern.",
)
@path_option(
    "--image",
    "image",
    help="Intensity image (MRC/TIFF) for --pattern image, stretched over the sensor.",
)
@click.option(
    "--spot",
    "centre",
    type=(float, float),
    default=None,
    metavar="X Y",
    help="Spot centre in pixels (default the sensor centre).",
)
@optional_option(
    "--spot-sigma",
    type=float,
    help=f"Spot rms in pixels (default {DEFAULT_SPOT_SIGMA_PX:.3f}: a 2 um beam on "
    f"{DEFAULT_PITCH_UM:g} um pixels).",
)
@count_option("--scan-points", default=100, help="Random scan points for --pattern scan.")
@count_option("--dwell", default=10, help="Frames on each scan point.")
@path_option(
    "--specimen",
    "specimen",
    help="A specimen's image (dedkit sim specimen's MRC, or any MRC/TIFF with a pixel size "
    "in A) imaged at --pixel-size A per sensor pixel, centred on the sensor, drifting "
    "--drift A over the run (in place of --pattern).",
)
@click.option(
    "--pixel-size",
    type=float,
    default=1.0,
    show_default=True,
    help="Sensor pixel at the specimen, A (with --specimen; MÖNCH at 150 kX: ~1 A).",
)
@click.option(
    "--drift",
    "drift_A",
    type=float,
    default=0.0,
    show_default=True,
    help="Specimen drift over the run, A of path (with --specimen).",
)
@click.option(
    "--tracks",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="Draw the electrons from a cached library of this many Geant4 tracks, "
    "each placed with a random rotation (0: every electron its own Geant4 track).",
)
@count_option(
    "--dark-frames",
    default=1000,
    help="Dark frames, written as the run NAME_dark (for the pedestal).",
)
@click.option("--name", default="sim", show_default=True, help="Run name.")
@output_option("Folder to write.")
@force_option("Replace a previous simulated run there.")
@_detector_options
def sim_frames(energy, n_frames, flux, pattern, image, centre, spot_sigma, scan_points, dwell,
               specimen, pixel_size, drift_A, tracks, dark_frames, name, output, force,
               **options):  # fmt: skip
    """Simulate a raw MÖNCH run (slsDetector files), its dark run, the truth about every
    electron and the gain map, which 'dedkit hpd' reads as a measured run."""
    from dedkit.jobs.sim import beam_pattern, write_simulated_run

    seed, workers = options.pop("seed"), options.pop("workers")
    detector = _detector(options)
    sensor = detector["sensor"]
    stream = None
    if specimen is not None:
        from dedkit.jobs.gold import specimen_pattern
        from dedkit.jobs.specimen import read_specimen

        if pattern != "flat" or image is not None:
            raise DedkitError("--specimen replaces --pattern and --image: give one or the other")
        beam = specimen_pattern(
            read_specimen(specimen), pixel_size, drift_A, n_frames, seed=seed,
            shape=(sensor.ny, sensor.nx),
        )  # fmt: skip
    else:
        beam = beam_pattern(
            pattern,
            shape=(sensor.ny, sensor.nx),
            image=image,
            centre_px=centre,
            sigma_px=spot_sigma,
            scan_points=scan_points,
            dwell_frames=dwell,
            seed=seed,
        )
    if tracks:
        from dedkit.jobs.gold import track_stream

        stream = track_stream(tracks, energy_keV=energy, seed=seed, workers=workers)
    _run("frames", write_simulated_run, output, options=options, energy_keV=energy,
         n_frames=n_frames, flux=flux, pattern=beam, dark_frames=dark_frames, seed=seed,
         workers=workers, name=name, force=force, inputs=[image, specimen], stream=stream,
         **detector)  # fmt: skip


@sim.command("dataset")
@energy_option("Beam energy, keV (20-300).")
@click.option(
    "--n",
    "n",
    type=click.IntRange(1),
    required=True,
    help="Selected single-electron clusters to write.",
)
@chunk_option(
    "chunk_primaries",
    default=20000,
    help="Primaries per chunk (the unit of resumption; at most --n).",
)
@click.option("--no-adc", is_flag=True, help="Keep keV values (no ADC rounding/saturation).")
@output_option("OUT.h5 to write.")
@force_option("Overwrite OUT.h5 and discard unfinished parts.")
@_detector_options
def sim_dataset(energy, n, chunk_primaries, no_adc, output, force, **options):
    """Write a training set of N single-electron clusters (15 x 15 images in keV, the 7
    features, the true entry point relative to the crop, backscatter flag). An
    interrupted run continues where it stopped when started again with the same
    arguments."""
    from dedkit.jobs.sim import build_training_set

    seed, workers = options.pop("seed"), options.pop("workers")
    detector = _detector(options)
    _run("clusters", build_training_set, output, options=options, energy_keV=energy, n=n,
         seed=seed, workers=workers, chunk_primaries=chunk_primaries, adc=not no_adc,
         force=force, **detector)  # fmt: skip


@sim.command("validate")
@energy_option("Beam energy, keV (published figures at 60, 100, 200, 300).", default=200.0)
@click.option(
    "--n", "n", type=click.IntRange(1), default=20000, show_default=True, help="Primary electrons."
)
@chunk_option("chunk_primaries", default=10000, help="Primaries per Geant4 call.")
@_detector_options
def sim_validate(energy, n, chunk_primaries, **options):
    """Simulate N primaries through the whole chain and compare backscatter, absorption,
    deposited energy, charge-centroid RMSE and penetration with the published figures."""
    from dedkit.sim.validate import validate

    seed, workers = options.pop("seed"), options.pop("workers")
    detector = _detector(options)
    _run("primaries", validate, energy, n, seed, workers, options=options,
         chunk_primaries=chunk_primaries, **detector)  # fmt: skip


# ----- dedkit sim movies: a folder of counting movies as SerialEM writes it ---------------


class _FrameSize(click.ParamType):
    """``--size WxH``: width and height in pixels, as (ny, nx)."""

    name = "WxH"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            width, height = (int(v) for v in str(value).lower().split("x"))
        except ValueError:
            self.fail(f"{value!r} is not WIDTHxHEIGHT in pixels (e.g. 512x512)", param, ctx)
        if width < 8 or height < 8:
            self.fail(f"{value!r}: a movie needs at least 8 x 8 pixels", param, ctx)
        return height, width


@sim.command("movies")
@click.argument("folder", type=click.Path())
@count_option("--movies", default=4, help="Movies to write.")
@count_option("--frames", default=12, help="Frames per movie.")
@click.option("--size", "shape", type=_FrameSize(), default="512x512", show_default=True,
              help="Frame size, WIDTHxHEIGHT pixels.")  # fmt: skip
@float_option("--dose-per-pixel", default=2.0, help="Mean electrons per pixel and frame.")
@choice_option("--format", "fmt", choices=["mrc", "tif", "eer"], default="mrc",
               help="MRC, TIFF (LZW, as SerialEM saves it) or EER fractions.")  # fmt: skip
@count_option("--eer-fractions-per-frame", default=10,
              help="EER fractions a frame is split into (read with --eer-group N).")  # fmt: skip
@float_option("--pixel-size", default=1.0, help="Pixel size, Å (in the mdoc and headers).")
@float_option("--voltage", default=300.0, help="Voltage, kV (in the mdoc).")
@click.option("--name-pattern", default="movie_{:04d}", show_default=True,
              help="Python format of the file stems, given the movie's number from 0.")  # fmt: skip
@float_option("--drift", default=10.0,
              help="Mean motion path length, pixels (each movie 0.5-1.5 times it).")  # fmt: skip
@seed_option(help="Random seed (the same seed gives the same movies).")
@float_option("--interval", default=0.0,
              help="Seconds between movies, as a session acquiring (0: all at once).")  # fmt: skip
@float_option("--frame-interval", default=0.0,
              help="Write each movie into its final name frame by frame, this many seconds "
              "apart, then its mdoc (what a live 'dedkit align --watch' must wait for); "
              "0: each movie appears whole.")  # fmt: skip
@job_options("Replace movies and mdocs of the same names.", warn_as="dedkit sim movies")
def sim_movies(folder, movies, frames, shape, dose_per_pixel, fmt, eer_fractions_per_frame,
               pixel_size, voltage, name_pattern, drift, seed, interval, frame_interval,
               job):  # fmt: skip
    """Write a folder of simulated counting movies (known specimen and motion) with a
    SerialEM frame mdoc beside each (dose, pixel size, voltage), as SerialEM saves them
    during a session: try 'dedkit align FOLDER -o aligned/' or, while it writes,
    'dedkit align --watch FOLDER -o aligned/'."""
    from dedkit.jobs.sim_movies import write_simulated_movies

    job.run("frames", write_simulated_movies, folder, movies=movies, frames=frames,
            shape=shape, dose_per_pixel=dose_per_pixel, format=fmt,
            eer_fractions_per_frame=eer_fractions_per_frame, pixel_size=pixel_size,
            voltage=voltage, name_pattern=name_pattern, drift=drift, seed=seed,
            interval=interval, frame_interval=frame_interval)  # fmt: skip


# ----- dedkit sim specimen: the gold-on-carbon HRTEM image (abTEM) ---------------------------


class _Range(click.ParamType):
    """``MIN,MAX``: two numbers."""

    name = "MIN,MAX"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            lo, hi = (float(v) for v in str(value).split(","))
        except ValueError:
            self.fail(f"{value!r} is not MIN,MAX (e.g. 2,10)", param, ctx)
        return lo, hi


def _specimen_defaults():
    from dedkit.sim.specimen import Microscope, SpecimenSpec

    return SpecimenSpec(), Microscope()


_SPEC, _MICROSCOPE = _specimen_defaults()


@sim.command("specimen")
@output_option("OUT.mrc to write (its parameters go to OUT.mrc.json).")
@float_option("--field", default=_SPEC.field_A, help="Side of the square specimen area, Å.")
@float_option("--sampling", default=_SPEC.sampling_A, help="Pixel size of the image, Å.")
@click.option("--diameter", type=_Range(), default="{:g},{:g}".format(*_SPEC.diameter_nm),
              show_default=True, help="Range of the particles' diameters, nm.")  # fmt: skip
@float_option("--coverage", default=_SPEC.coverage,
              help="Projected area fraction covered by gold.")  # fmt: skip
@float_option("--zone-axis-fraction", default=_SPEC.zone_axis_fraction,
              help="Fraction of the particles with a <110> axis along the beam.")  # fmt: skip
@float_option("--carbon", default=_SPEC.carbon_nm, help="Amorphous carbon thickness, nm.")
@float_option("--energy", default=_MICROSCOPE.energy_keV, help="Beam energy, keV.")
@float_option("--defocus", default=_MICROSCOPE.defocus_A, help="Defocus, Å (positive: underfocus).")
@float_option("--cs", default=_MICROSCOPE.cs_mm, help="Spherical aberration, mm.")
@float_option("--aperture", default=_MICROSCOPE.aperture_mrad,
              help="Objective aperture semiangle, mrad.")  # fmt: skip
@float_option("--focal-spread", default=_MICROSCOPE.focal_spread_A, help="Focal spread, Å.")
@float_option("--semiangle", default=_MICROSCOPE.semiangle_mrad,
              help="Beam convergence semiangle, mrad (partial spatial coherence).")  # fmt: skip
@seed_option(default=_SPEC.seed, help="Random seed (with the settings it fixes the specimen).")
@click.option("--preview", type=click.Path(), default=None,
              help="Also draw the image and its power spectrum into this PNG.")  # fmt: skip
@click.option("--no-cache", is_flag=True, help="Compute again, neither reading nor writing "
              "the cache ($DEDKIT_CACHE, else ~/.cache/dedkit).")  # fmt: skip
@job_options()
def sim_specimen(output, field, sampling, diameter, coverage, zone_axis_fraction, carbon,
                 energy, defocus, cs, aperture, focal_spread, semiangle, seed, preview,
                 no_cache, job):  # fmt: skip
    """Gold nanoparticles (fcc, a = 4.078 Å) on amorphous carbon, built with ase, and
    their 200 keV HRTEM image by abTEM multislice (cached on disk): the specimen of
    'dedkit sim frames --specimen OUT.mrc --pixel-size 1'. Needs the specimen extra (pip
    install 'dedkit[specimen]')."""
    from dedkit.jobs.specimen import make_specimen
    from dedkit.sim.specimen import Microscope, SpecimenSpec

    for module in ("ase", "abtem"):
        if importlib.util.find_spec(module) is None:
            raise DedkitError(
                f"dedkit sim specimen needs {module}: pip install -c constraints.txt "
                "'dedkit[specimen]'"
            )
    spec = SpecimenSpec(field_A=field, sampling_A=sampling, diameter_nm=diameter,
                        coverage=coverage, zone_axis_fraction=zone_axis_fraction,
                        carbon_nm=carbon, seed=seed)  # fmt: skip
    microscope = Microscope(energy_keV=energy, defocus_A=defocus, cs_mm=cs,
                            aperture_mrad=aperture, focal_spread_A=focal_spread,
                            semiangle_mrad=semiangle)  # fmt: skip
    announce = None if job.as_json or job.quiet else (lambda m: click.echo(m + "...", err=True))
    job.run("multislice", make_specimen, output, spec, microscope, preview=preview,
            cache=not no_cache, announce=announce)  # fmt: skip

"""Benchmark: ``dedkit align`` on a K3 super-resolution movie as SerialEM saves it (issue 15).

Target: a 40-frame 11520 x 8184 super-resolution movie (4-bit MRC mode 101, unnormalised,
~1 electron per physical pixel per frame, with a gain reference and a defect list) to a
dose-weighted sum at counting size (5760 x 4092) with 5 x 5 patches in at most 30 s on
2 cores, with a peak memory of at most 4 GB (the float movie would be 15 GB: it must be
streamed).

Measures, in one run, each in a fresh process:

- the floor: reading and decoding the stack once (``dedkit.io.open_stack``, every frame
  unpacked to bytes) plus one real FFT per frame at counting size
  (``scipy.fft.rfft2(..., workers=2)`` of a float32 5760 x 4092 frame);
- ``dedkit align MOVIE --gain --defects --reduce 2 --patches 5x5 --dose D --json``, run
  through dedkit's command-line entry point: wall time of the process (interpreter start
  included), the job's time per stage from its ``--json`` report and the process's peak
  resident memory (VmHWM);
- torch-motion-correction (tmc, CPU PyTorch, the pip package) on the same movie: it
  needs the whole movie as a normalised float tensor, so it gets the gain-normalised,
  defect-corrected frames reduced to counting size (made with dedkit's own functions,
  timed apart), then its global cross-correlation estimate, its local (spline field)
  refinement with a 5 x 5 field, and its correction of every frame summed into one
  image. When the full size would not finish within ``--tmc-timeout`` seconds (600, the
  issue's 10 minutes; predicted from the time of its first optimiser steps and of one
  frame's correction, and then stopped) smaller centred crops are tried, up to the
  largest that finishes (see :func:`run_tmc`); the table says which sizes finished and
  which did not. ``--tmc WxH`` runs one crop.

The movie: a specimen with a 1/f spectrum whose standard deviation is 5 % of its mean, on
the physical pixel grid, sampled (bilinear, periodic) along a beam-induced trajectory
(fast start, then slow drift, 15 physical pixels of path) plus a smooth local deformation
growing to 1 physical pixel, times a per-physical-pixel sensitivity (3 % rms, the
reciprocal of the gain reference), Poisson counts at 0.25 per super-resolution pixel per
frame, hot and dead defects at the places the defect list names (a SerialEM list at
physical size, scaled x 2 by the reader). A numba kernel makes the packed 4-bit rows
directly; dedkit's own stack writer writes them, once, into ``--workdir`` (default
/tmp/dedkit_bench_align); later runs reuse the movie. Only files this script made are
deleted (``--clean`` removes the movie too). A quick check of the whole script:
``--frames 8 --size 2880x2046``.

Usage: python benchmarks/bench_align.py [--frames 40] [--size 5760x4092] [--workdir DIR]
       [--patches 5x5] [--tmc auto|off|WxH] [--tmc-timeout 600] [--no-job] [--clean]
       [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numba
import numpy as np

TARGET_SECONDS = 30.0
TARGET_PEAK_BYTES = 4e9  # 4 GB
COUNTING_SIZE = (5760, 4092)  # (nx, ny) of a K3 in counting mode
COUNTING_PIXEL_A = 1.06  # Angstrom per counting (physical) pixel, a typical K3 setting
ELECTRONS_PER_PIXEL = 1.0  # per physical pixel per frame
DRIFT_PATH_PX = 15.0  # physical pixels of trajectory, fast start then slow drift
LOCAL_PX = 1.0  # physical pixels of local deformation at the last frame
CONTRAST = 0.05  # specimen standard deviation / mean
GAIN_RMS = 0.03
SEED = 15
GENERATOR = 2  # bumped when the movie's recipe changes: older movies are made again
DEFAULT_WORKDIR = Path("/tmp/dedkit_bench_align")
ITERATIONS = 100  # tmc's local refinement: its default number of optimiser steps


# ---------------------------------------------------------------------------------------
# the movie


def trajectory(n_frames: int, path_px: float = DRIFT_PATH_PX) -> np.ndarray:
    """Beam-induced drift (dx, dy) per frame in physical pixels, zero mean: a fast start
    decaying over a few frames, then a slow linear drift; ``path_px`` of path in all."""
    t = np.arange(n_frames, dtype=np.float64)
    fast = 1.0 - np.exp(-t / 3.0)
    xy = np.stack([0.8 * fast + 0.012 * t, -0.55 * fast + 0.008 * t], axis=1)
    path = np.sum(np.hypot(*np.diff(xy, axis=0).T)) if n_frames > 1 else 1.0
    xy *= path_px / path
    return xy - xy.mean(axis=0)


def specimen(shape, rng) -> np.ndarray:
    """Periodic random field with a 1/f amplitude spectrum, mean 1, std CONTRAST (float32)."""
    import scipy.fft

    ny, nx = shape
    ky = np.fft.fftfreq(ny).astype(np.float32)[:, None]
    kx = np.fft.rfftfreq(nx).astype(np.float32)[None, :]
    k = np.sqrt(ky * ky + kx * kx)
    k[0, 0] = 1.0
    amp = 1.0 / k
    amp[0, 0] = 0.0
    del k
    spectrum = rng.standard_normal((ny, nx // 2 + 1), dtype=np.float32) * amp
    spectrum = spectrum + 1j * (rng.standard_normal(amp.shape, dtype=np.float32) * amp)
    del amp
    field = scipy.fft.irfft2(spectrum.astype(np.complex64), s=shape, workers=2)
    del spectrum
    field *= np.float32(CONTRAST / field.std())
    field += np.float32(1.0)
    return field.astype(np.float32, copy=False)


#: margin of the periodic specimen copy the kernel reads, in physical pixels (more than
#: any shift of the movie)
PAD = 64


u64 = np.uint64


@numba.njit(inline="always")
def next64(state):
    # splitmix64: the next state and 64 random bits
    state += u64(0x9E3779B97F4A7C15)
    z = state
    z = (z ^ (z >> u64(30))) * u64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> u64(27))) * u64(0x94D049BB133111EB)
    return state, z ^ (z >> u64(31))


@numba.njit(parallel=True, cache=True)
def frame_kernel(spec, sens, dose, dx, dy, lx, ly, wx, wy, rate_max, cdf32, seed, packed):
    # One frame's packed 4-bit rows: counts ~ Poisson(dose * sensitivity * specimen
    # seen at (x - shift, y - shift)), left pixel in the low nibble (mode 101).
    # Poisson(rate) is drawn as Poisson(rate_max) (inversion of its table ``cdf32``,
    # in units of 2**-32) thinned by rate / rate_max, which is exact and needs the
    # rate, an interpolation of the specimen, only where an electron may have arrived
    # (a fifth of the pixels). One 64-bit draw serves the two pixels of a byte. The
    # random numbers come from a counter-based generator seeded per row, so that a
    # movie is the same whatever the threads.
    ny, nx = packed.shape[0], 2 * packed.shape[1]
    mask32 = u64(0xFFFFFFFF)
    for y in numba.prange(ny):
        state = u64(seed) ^ (u64(y + 1) * u64(0xD1B54A32D192ED03))
        wyy = wy[y]
        for xb in range(nx // 2):
            state, bits = next64(state)
            if (bits & mask32) <= cdf32[0] and (bits >> u64(32)) <= cdf32[0]:
                packed[y, xb] = 0
                continue
            byte = 0
            for half in range(2):
                x = 2 * xb + half
                u = (bits >> u64(32 * half)) & mask32
                if u <= cdf32[0]:
                    continue
                n_max = 1
                while n_max < 15 and u > cdf32[n_max]:
                    n_max += 1
                # the specimen point seen here: global shift plus the local field
                # in the specimen's pixels, which are physical pixels (2 x 2 of ours)
                sx = 0.5 * (x + 0.5 - dx - lx * wx[x] * wyy) - 0.5
                sy = 0.5 * (y + 0.5 - dy - ly * wx[x] * wyy) - 0.5
                # spec is padded by PAD on every side: no wrapping here, and
                # truncation of a positive number is its floor
                x0 = int(sx + PAD)
                y0 = int(sy + PAD)
                fx = sx + PAD - x0
                fy = sy + PAD - y0
                s = (1 - fy) * ((1 - fx) * spec[y0, x0] + fx * spec[y0, x0 + 1]) + fy * (
                    (1 - fx) * spec[y0 + 1, x0] + fx * spec[y0 + 1, x0 + 1]
                )
                keep = dose * s * sens[y // 2, x // 2] / rate_max
                k = 0
                for _ in range(n_max):
                    state, v = next64(state)
                    if (v >> u64(11)) * (1.0 / 9007199254740992.0) < keep:
                        k += 1
                byte |= k << (4 * half)
            packed[y, xb] = byte


def poisson_cdf32(rate: float) -> np.ndarray:
    """P(N <= k) for k = 0..15, N ~ Poisson(rate), in units of 2**-32 (uint64): a 32-bit
    random integer u gives N = the first k with u <= cdf32[k]; the last entry is the
    largest u (counts saturate at 15)."""
    p = np.exp(-rate) * np.cumprod(np.r_[1.0, rate / np.arange(1, 16)])
    cdf = np.minimum(np.cumsum(p) * 2.0**32, 2.0**32 - 1)
    cdf[-1] = 2.0**32 - 1
    return cdf.astype(np.uint64)


def movie_names(workdir: Path, n_frames: int, size) -> dict:
    nx, ny = size
    stem = f"k3sr_{n_frames}x{2 * nx}x{2 * ny}"
    return {
        "movie": workdir / f"{stem}.mrc",
        "gain": workdir / f"{stem}_gainref.mrc",
        "defects": workdir / f"{stem}_defects.txt",
        "truth": workdir / f"{stem}_truth.json",
    }


def make_defects(size, rng):
    """A SerialEM defect list at physical size: hot pixels, two hot columns, a dead row."""
    from dedkit.records.defects import DefectList

    nx, ny = size
    xs = rng.integers(8, nx - 8, 60)
    ys = rng.integers(8, ny - 8, 60)
    return DefectList(
        camera_size_x=nx,
        camera_size_y=ny,
        rotation_and_flip=0,
        k2_type=1,
        bad_pixels=[(int(x), int(y)) for x, y in zip(xs, ys, strict=True)],
        bad_columns=[int(nx * 0.31), int(nx * 0.77)],
        bad_rows=[int(ny * 0.62)],
        comments=["# dedkit bench_align: simulated K3 defects"],
    )


def apply_defects(packed: np.ndarray, defects) -> None:
    """Set the listed pixels in packed super-resolution rows (Y up): each listed physical
    pixel is a 2 x 2 block, i.e. one byte in two rows; y in the list counts from the top."""
    ny = packed.shape[0]
    for x, y in defects.bad_pixels:
        top = ny - 2 * y - 2
        packed[top : top + 2, x] = 0xFF
    for c in defects.bad_columns:
        packed[:, c] = 0xFF
    for r in defects.bad_rows:
        top = ny - 2 * r - 2
        packed[top : top + 2, :] = 0


def generate_movie(names: dict, n_frames: int, size, log) -> dict:
    """Write movie, gain reference and defect list; return the truth (also saved)."""
    from dedkit.io.defects import write_defects
    from dedkit.io.stack import create_stack
    from dedkit.io.titles import FrameTitleInfo, format_frame_titles

    nx, ny = size
    shape = (2 * ny, 2 * nx)
    rng = np.random.default_rng(SEED)
    t0 = time.perf_counter()
    # the specimen on the physical pixel grid, interpolated: its 1/f spectrum holds
    # almost nothing beyond that grid's Nyquist frequency
    spec = specimen((ny, nx), rng)
    log(f"  specimen {nx} x {ny} in {time.perf_counter() - t0:.1f} s")
    pixel = rng.normal(1.0, GAIN_RMS, (ny, nx)).clip(0.7, 1.3)
    yy = np.linspace(-1, 1, ny)[:, None]
    xx = np.linspace(-1, 1, nx)[None, :]
    sens = (pixel * (1 + 0.01 * np.cos(np.pi * xx) * np.cos(np.pi * yy))).astype(np.float32)
    sens /= sens.mean()
    del pixel
    defects = make_defects(size, rng)
    shifts_phys = trajectory(n_frames)
    # smooth local deformation: a bump over the field of view growing linearly in time,
    # on top of the global shift (physical pixels)
    wx = np.sin(np.pi * (np.arange(2 * nx) + 0.5) / (2 * nx)).astype(np.float64)
    wy = np.sin(np.pi * (np.arange(2 * ny) + 0.5) / (2 * ny)).astype(np.float64)
    titles = format_frame_titles(FrameTitleInfo(packed_4bit=True, rotflip=0)) + [
        f"  {names['gain'].name}",
        f"  {names['defects'].name}",
    ]
    packed = np.empty((shape[0], nx), np.uint8)
    assert np.abs(shifts_phys).max() + LOCAL_PX + 2 < PAD
    spec = np.pad(spec, PAD, mode="wrap")
    dose = ELECTRONS_PER_PIXEL / 4.0  # counts per super-resolution pixel
    # no pixel's rate exceeds this (the interpolated specimen stays within its range)
    rate_max = dose * float(spec.max()) * float(sens.max()) * 1.0001
    cdf = poisson_cdf32(rate_max)
    t0 = time.perf_counter()
    with create_stack(
        names["movie"],
        (n_frames, *shape),
        np.uint8,
        packing="mode101",
        titles=titles,
        pixel_size=COUNTING_PIXEL_A / 2,
        force=True,
    ) as writer:
        for i in range(n_frames):
            dx, dy = 2 * shifts_phys[i]
            growth = 2 * LOCAL_PX * i / max(n_frames - 1, 1)
            seed = SEED * 1000 + i
            frame_kernel(
                spec, sens, dose, dx, dy, growth, -0.6 * growth, wx, wy, rate_max, cdf, seed, packed
            )
            apply_defects(packed, defects)
            writer.write_packed(packed)
    log(f"  {n_frames} frames written in {time.perf_counter() - t0:.1f} s")
    del spec
    gain = np.repeat(np.repeat(1.0 / sens, 2, axis=0), 2, axis=1).astype(np.float32)
    gain /= gain.mean()
    with create_stack(names["gain"], (1, *shape), np.float32, force=True) as writer:
        writer.write(gain)
    del gain
    write_defects(defects, names["defects"], force=True)
    path = np.sum(np.hypot(*np.diff(shifts_phys, axis=0).T)) if n_frames > 1 else 0.0
    truth = {
        "frames": n_frames,
        "size": [2 * nx, 2 * ny],
        "seed": SEED,
        "generator": GENERATOR,
        "electrons_per_physical_pixel": ELECTRONS_PER_PIXEL,
        "counting_pixel_A": COUNTING_PIXEL_A,
        "shifts_physical_px": shifts_phys.round(4).tolist(),
        "total_drift_physical_px": round(float(path), 3),
        "local_px_at_last_frame": LOCAL_PX,
        "contrast": CONTRAST,
        "gain_rms": GAIN_RMS,
        "movie_bytes": names["movie"].stat().st_size,
    }
    names["truth"].write_text(json.dumps(truth, indent=1))
    return truth


def true_global_shifts(truth: dict) -> np.ndarray:
    """The movie's global shifts (dx, dy) in super-resolution pixels, zero mean: the
    trajectory plus the mean over the field of the local bump (sin x sin has mean
    (2/pi)**2), which a global estimate sees as a shift too."""
    n = truth["frames"]
    growth = 2 * truth["local_px_at_last_frame"] * np.arange(n) / max(n - 1, 1)
    local = (2 / np.pi) ** 2 * growth[:, None] * np.array([1.0, -0.6])
    shifts = 2 * np.asarray(truth["shifts_physical_px"]) + local
    return shifts - shifts.mean(axis=0)


def ensure_movie(workdir: Path, n_frames: int, size, log) -> tuple[dict, dict, bool]:
    """The movie's file names, its truth, and whether this run made it."""
    names = movie_names(workdir, n_frames, size)
    if names["truth"].exists() and all(names[k].exists() for k in ("movie", "gain", "defects")):
        truth = json.loads(names["truth"].read_text())
        same = truth.get("seed") == SEED and truth.get("generator") == GENERATOR
        if same and truth["movie_bytes"] == names["movie"].stat().st_size:
            log(f"reusing {names['movie']}")
            return names, truth, False
    nx, ny = size
    need = n_frames * (2 * ny) * nx + 4 * (4 * nx * ny)
    free = shutil.disk_usage(workdir).free
    if free < need + 6 * 4 * nx * ny + 2**30:
        sys.exit(f"bench_align: {workdir} has {free / 1e9:.1f} GB free, needs {need / 1e9:.1f} GB")
    log(f"making {names['movie']} ({need / 1e9:.2f} GB with its gain reference)")
    t0 = time.perf_counter()
    truth = generate_movie(names, n_frames, size, log)
    log(f"  done in {time.perf_counter() - t0:.1f} s")
    return names, truth, True


# ---------------------------------------------------------------------------------------
# child processes: each prints one JSON line


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def child_floor(movie: str) -> None:
    """Read and decode every frame once; one rfft2 per frame at counting size."""
    import scipy.fft

    from dedkit.io.stack import open_stack

    read_s = fft_s = 0.0
    with open_stack(movie) as reader:
        n, ny, nx = reader.info.nz, reader.info.ny, reader.info.nx
        small = np.empty((ny // 2, nx // 2), np.float32)
        scipy.fft.rfft2(small, workers=2)  # plan and thread pool made before timing
        for i in range(n):
            t = time.perf_counter()
            frame = reader.read(i)
            read_s += time.perf_counter() - t
            # the FFT's input: a counting-size float frame (the copy is not timed)
            np.copyto(small, frame[::2, ::2])
            t = time.perf_counter()
            scipy.fft.rfft2(small, workers=2)
            fft_s += time.perf_counter() - t
    print(json.dumps({"frames": n, "read_decode_s": read_s, "fft_s": fft_s}))


def child_job(argv: list[str]) -> None:
    """Run ``dedkit align`` through the command-line entry point in this fresh process
    and report its exit status, its --json report and this process's peak memory."""
    from dedkit.cli.main import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(argv)
    text = out.getvalue()
    try:
        report = json.loads(text)
    except ValueError:
        report = {"stdout": text[-2000:]}
    print(json.dumps({"status": status, "report": report, "peak_kb": _status_kb("VmHWM")}))


def _tmc_progress(path: str, **fields) -> None:
    with open(path, "a") as f:
        f.write(json.dumps({"t": time.time(), **fields}) + "\n")


def _tmc_correct_sum(stack, field, indices):
    """The sum of tmc's corrections of the frames ``indices`` of ``stack``: its own
    per-frame step (``correct_motion`` returns the whole corrected movie, another float
    copy of it; here each frame is added to the sum instead)."""
    import torch
    from torch_grid_utils import coordinate_grid
    from torch_motion_correction.correct_motion import _correct_frame

    n, cy, cx = stack.shape
    _, _, gh, gw = field.data.shape
    pixel_grid = coordinate_grid(image_shape=(cy, cx), device=stack.device)
    times = torch.linspace(0, 1, steps=n)
    total = torch.zeros((cy, cx), dtype=torch.float32)
    with torch.no_grad():
        for i in indices:
            total += _correct_frame(
                frame=stack[i],
                frame_deformation_grid=field.evaluate_at_t(
                    t=times[i], grid_shape=(10 * gh, 10 * gw)
                ),
                pixel_spacing=COUNTING_PIXEL_A,
                pixel_grid=pixel_grid,
            )
    return total


def child_tmc(movie: str, gain: str, defects: str, crop: str, patches: str, progress: str):
    """torch-motion-correction on the movie: prepare the float counting-size movie with
    dedkit's functions, then tmc's global estimate, local refinement and correction."""
    import torch
    from torch_motion_correction import (
        OptimizationConfig,
        PatchSamplingConfig,
        estimate_global_motion,
        estimate_local_motion,
    )

    from dedkit.frames import (
        DefectCorrector,
        antialias_reduce,
        normalize_frame,
        prepare_defects,
        prepare_gain,
    )
    from dedkit.io.defects import read_defects
    from dedkit.io.stack import open_stack

    torch.set_num_threads(2)
    cx, cy = (int(v) for v in crop.split("x"))
    px, py = (int(v) for v in patches.split("x"))
    t0 = time.perf_counter()
    with open_stack(movie) as reader:
        info = reader.info
        n, ny, nx = info.nz, info.ny, info.nx
        with open_stack(gain) as g:
            gain_ref = prepare_gain(g.read(0), (ny, nx), rotflip=0)
        corrector = DefectCorrector(prepare_defects(read_defects(defects), (ny, nx)))
        y0 = (ny // 2 - cy) // 2
        x0 = (nx // 2 - cx) // 2
        stack = torch.empty((n, cy, cx), dtype=torch.float32)
        frame = np.empty((ny, nx), np.float32)
        small = np.empty((ny // 2, nx // 2), np.float32)
        for i in range(n):
            normalize_frame(reader.read_packed(i), gain_ref, scale=1.0, packed_nx=nx, out=frame)
            corrector.apply(frame, out=frame)
            antialias_reduce(frame, 2, out=small)
            stack[i] = torch.from_numpy(small[y0 : y0 + cy, x0 : x0 + cx])
    del frame, small
    prep_s = time.perf_counter() - t0
    _tmc_progress(progress, stage="prepared", seconds=prep_s)

    t0 = time.perf_counter()
    field = estimate_global_motion(stack, pixel_spacing=COUNTING_PIXEL_A)
    global_s = time.perf_counter() - t0
    shifts = (field.data[:, :, 0, 0].T / COUNTING_PIXEL_A).numpy()  # (t, 2) y, x pixels
    global_path = float(np.sum(np.hypot(*np.diff(shifts, axis=0).T)))
    _tmc_progress(progress, stage="global", seconds=global_s)
    # one frame corrected first, so that the parent can predict the whole run's time
    t0 = time.perf_counter()
    _tmc_correct_sum(stack, field, [0])
    _tmc_progress(progress, stage="probe", seconds=time.perf_counter() - t0)

    t0 = time.perf_counter()
    nt = min(n, 10)
    local, _ = estimate_local_motion(
        stack,
        pixel_spacing=COUNTING_PIXEL_A,
        deformation_field_resolution=(nt, py, px),
        patch_sampling=PatchSamplingConfig(patch_shape=(512, 512), overlap=0.5),
        initial_deformation_field=field,
        optimization=OptimizationConfig(max_iterations=ITERATIONS),
    )
    local_s = time.perf_counter() - t0
    _tmc_progress(progress, stage="local", seconds=local_s)

    t0 = time.perf_counter()
    total = _tmc_correct_sum(stack, local, range(n))
    correct_s = time.perf_counter() - t0
    _tmc_progress(progress, stage="corrected", seconds=correct_s)
    print(
        json.dumps(
            {
                "crop": [cx, cy],
                "frames": n,
                "field": f"{nt} x {py} x {px}",
                "prepare_s": prep_s,
                "global_s": global_s,
                "local_s": local_s,
                "correct_sum_s": correct_s,
                "global_path_px": global_path,
                "sum_mean": float(total.mean()),
                "peak_kb": _status_kb("VmHWM"),
            }
        )
    )


# ---------------------------------------------------------------------------------------
# the parent


def _child(*args: str, log=None, timeout=None) -> tuple[dict | None, float]:
    cmd = [sys.executable, __file__, *args]
    t = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, time.perf_counter() - t
    wall = time.perf_counter() - t
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-3000:])
        raise SystemExit(f"bench_align: child {args[0]} failed ({done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1]), wall


def _clock(text: str) -> float:
    seconds = 0.0
    for part in text.split(":"):
        seconds = 60 * seconds + float(part)
    return seconds


def _tmc_bar(log_path: Path) -> tuple[int, float, float] | None:
    """(iterations done, seconds elapsed, seconds remaining) of tmc's local refinement,
    from the last state of its tqdm bar ("12/100 [00:30<03:40, ...")."""
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return None
    found = re.findall(r"(\d+)/\d+ \[(\d+:\d+(?::\d+)?)<(\d+:\d+(?::\d+)?)", text)
    if not found:
        return None
    done, elapsed, remaining = found[-1]
    return int(done), _clock(elapsed), _clock(remaining)


def _tmc_try(names, crop, n_frames, patches, timeout, log) -> dict:
    """One run of tmc on a centred crop of the counting-size movie. Killed as soon as its
    local refinement, timed over its first iterations, is predicted to end after
    ``timeout`` seconds of estimation (or when that time has passed)."""
    cx, cy = crop
    progress = names["movie"].with_name("tmc_progress.jsonl")
    bar = names["movie"].with_name("tmc_stderr.log")
    progress.unlink(missing_ok=True)
    log(f"tmc on {cx} x {cy} (limit {timeout:.0f} s after its input is prepared)")
    cmd = [sys.executable, __file__, "--child-tmc", str(names["movie"]), str(names["gain"])]
    cmd += [str(names["defects"]), f"{cx}x{cy}", patches, str(progress)]
    t = time.perf_counter()
    predicted = basis = None
    try:
        with open(bar, "w") as err:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
            out = None
            while out is None:
                try:
                    out, _ = proc.communicate(timeout=2)
                    break
                except subprocess.TimeoutExpired:
                    pass
                stages = _read_progress(progress)
                if "prepared" not in stages:
                    continue
                started = stages["prepared"]["t"]
                now = time.time()
                if "probe" in stages and predicted is None:
                    # a lower bound: the global estimate and correcting every frame
                    floor = stages["global"]["seconds"] + stages["probe"]["seconds"] * n_frames
                    if floor > timeout:
                        predicted = floor
                        basis = "global estimate + correction of every frame alone"
                state = _tmc_bar(bar) if "probe" in stages else None
                if state is not None and "local" not in stages:
                    # tqdm's own estimate of the time left, once past the first steps,
                    # plus the correction of every frame at the probe's pace
                    done, elapsed, remaining = state
                    if done >= 5 and elapsed >= 20:
                        basis = f"after {done} of {ITERATIONS} local refinement steps"
                        predicted = (
                            stages["global"]["seconds"]
                            + (stages["probe"]["t"] - stages["global"]["t"])
                            + elapsed
                            + remaining
                            + stages["probe"]["seconds"] * n_frames
                        )
                if now - started > timeout or (predicted is not None and predicted > timeout):
                    proc.kill()
                    proc.communicate()
                    break
        stages = _read_progress(progress)
        if out is None:
            last = max(stages, key=lambda k: stages[k]["t"]) if stages else "none"
            how = f"predicted {predicted:.0f} s" if predicted else "stopped"
            log(f"  would not finish in {timeout:.0f} s ({how}; last stage done: {last})")
            return {
                "crop": [cx, cy],
                "finished": False,
                "last_stage": last,
                "predicted_s": predicted,
                "basis": basis,
            }
        if proc.returncode != 0:
            sys.stderr.write(bar.read_text(errors="replace")[-3000:])
            raise SystemExit(f"bench_align: tmc failed ({proc.returncode})")
    finally:
        progress.unlink(missing_ok=True)
        bar.unlink(missing_ok=True)
    result = json.loads(out.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - t
    result["finished"] = True
    return result


def _read_progress(path: Path) -> dict:
    if not path.exists():
        return {}
    stages = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {s["stage"]: s for s in stages}


def run_tmc(names, size, n_frames, patches, mode, timeout, log, max_tries=5) -> dict:
    """tmc at the full counting size or, when it would not finish within ``timeout``
    seconds of estimation and correction, at the largest centred crop found that does.

    The time grows faster than the area (measured: 4 x the patches cost 40 x the time at
    8 frames), so the next crop's area comes from a power law through the largest crop
    that finished and the smallest that would not, aiming at 80 % of the limit; with no
    finished crop yet, from the prediction alone as if the time went with the area.
    ``mode`` 'auto' searches from the full size; 'WxH' runs that crop once."""
    nx, ny = size
    crop = (nx, ny) if mode == "auto" else tuple(int(v) for v in mode.lower().split("x"))
    target = 0.8 * timeout
    tries, best, failed = [], None, None  # best/failed: (area, seconds, result)
    for _ in range(max_tries):
        result = _tmc_try(names, crop, n_frames, patches, timeout, log)
        keys = ("crop", "finished", "last_stage", "predicted_s", "basis")
        tries.append({k: result.get(k) for k in keys})
        area = crop[0] * crop[1]
        if result["finished"]:
            seconds = result["global_s"] + result["local_s"] + result["correct_sum_s"]
            if best is None or area > best[0]:
                best = (area, seconds, result)
        else:
            seconds = result["predicted_s"] or 4 * timeout
            if failed is None or area < failed[0]:
                failed = (area, seconds, result)
        if mode != "auto" or failed is None:
            break
        if best is not None:
            power = math.log(failed[1] / best[1]) / math.log(failed[0] / best[0])
            next_area = best[0] * (target / best[1]) ** (1 / max(power, 1.0))
            next_area = min(next_area, 0.9 * failed[0])
            if next_area < 1.15 * best[0]:
                break
        else:
            next_area = failed[0] * target / failed[1]
        scale = math.sqrt(next_area / (nx * ny))
        crop = tuple(max(1024, int(v * scale) // 32 * 32) for v in (nx, ny))
        if crop[0] * crop[1] >= failed[0] or (best and crop[0] * crop[1] <= best[0]):
            break
    result = best[2] if best else failed[2]
    result["tries"] = tries
    return result


def _stage_seconds(report: dict) -> dict:
    """The job's time per stage, wherever its --json report keeps it."""
    for key in ("stage_seconds", "timing_s", "stages_s", "timing", "stages"):
        value = report.get(key)
        if isinstance(value, dict):
            return {k: float(v) for k, v in value.items() if isinstance(v, int | float)}
    details = report.get("details")
    if isinstance(details, dict):
        return _stage_seconds(details)
    return {}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--size", default="{}x{}".format(*COUNTING_SIZE), help="counting size NXxNY")
    ap.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    ap.add_argument("--patches", default="5x5")
    ap.add_argument("--tmc", default="auto", help="auto (full size, then smaller crops), off, WxH")
    ap.add_argument("--tmc-timeout", type=float, default=600.0)
    ap.add_argument("--no-job", action="store_true", help="floor and tmc only")
    ap.add_argument("--clean", action="store_true", help="delete the movie made by this run")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child-floor", nargs=1, help=argparse.SUPPRESS)
    ap.add_argument("--child-job", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    ap.add_argument("--child-tmc", nargs=6, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_floor:
        return child_floor(*args.child_floor)
    if args.child_job is not None:
        return child_job(args.child_job)
    if args.child_tmc:
        return child_tmc(*args.child_tmc)

    def log(message):
        print(message, file=sys.stderr, flush=True)

    size = tuple(int(v) for v in args.size.lower().split("x"))
    nx, ny = size
    made_dir = not args.workdir.exists()
    args.workdir.mkdir(parents=True, exist_ok=True)
    names, truth, made_movie = ensure_movie(args.workdir, args.frames, size, log)
    dose_a2 = ELECTRONS_PER_PIXEL / COUNTING_PIXEL_A**2  # e/A^2 per frame

    log("floor: read + decode + one rfft2 per frame")
    floor, floor_wall = _child("--child-floor", str(names["movie"]))

    out = args.workdir / "aligned.mrc"
    job_argv = [
        "align",
        str(names["movie"]),
        "-o",
        str(out),
        "--gain",
        str(names["gain"]),
        "--defects",
        str(names["defects"]),
        "--rotflip",
        "-1",
        "--reduce",
        "2",
        "--patches",
        args.patches,
        "--dose",
        f"{dose_a2:.4f}",
        "--force",
        "--json",
    ]
    job = None
    if not args.no_job:
        log("dedkit " + " ".join(job_argv))
        existing = set(args.workdir.iterdir())
        try:
            job, job_wall = _child("--child-job", *job_argv)
        finally:
            # the job's outputs (sums, reports): made by this run
            for p in set(args.workdir.iterdir()) - existing:
                if p.is_file():
                    p.unlink()
        if job["status"] != 0:
            raise SystemExit(f"bench_align: dedkit align exited {job['status']}: {job['report']}")
        job["wall_s"] = job_wall

    tmc = None
    if args.tmc != "off":
        tmc = run_tmc(names, size, args.frames, args.patches, args.tmc, args.tmc_timeout, log)

    if args.clean and made_movie:
        for key in ("movie", "gain", "defects", "truth"):
            names[key].unlink(missing_ok=True)
        if made_dir and not any(args.workdir.iterdir()):
            args.workdir.rmdir()

    report = job["report"] if job else {}
    peak_bytes = job["peak_kb"] * 1024 if job else None
    job_wall = job["wall_s"] if job else None
    floor_s = floor["read_decode_s"] + floor["fft_s"]
    shifts = np.asarray(report.get("shifts_px", []), float)
    job_path = float(np.sum(np.hypot(*np.diff(shifts, axis=0).T))) if len(shifts) > 1 else None
    rms_error = None
    if shifts.shape == (args.frames, 2):
        error = shifts - shifts.mean(axis=0) - true_global_shifts(truth)
        rms_error = float(np.sqrt(np.mean(np.sum(error**2, axis=1))))
    results = {
        "movie": f"{args.frames} x {2 * nx} x {2 * ny} 4-bit mode 101, "
        f"{truth['movie_bytes'] / 1e9:.2f} GB",
        "output": f"{nx} x {ny}",
        "load": os.getloadavg(),
        "cpu_count": os.cpu_count(),
        "floor_read_decode_s": floor["read_decode_s"],
        "floor_fft_s": floor["fft_s"],
        "floor_s": floor_s,
        "floor_wall_s": floor_wall,
        "job_wall_s": job_wall,
        "job_stages_s": _stage_seconds(report),
        "job_peak_MB": peak_bytes / 1e6 if job else None,
        "job_ratio_to_floor": job_wall / floor_s if job else None,
        "true_drift_physical_px": truth["total_drift_physical_px"],
        "job_drift_input_px": job_path,
        "job_total_drift_px": report.get("total_drift_px"),
        "job_shift_rms_error_px": rms_error,
        "tmc": tmc,
        "target_s": TARGET_SECONDS,
        "target_peak_MB": TARGET_PEAK_BYTES / 1e6,
        "time_target_met": bool(job and job_wall <= TARGET_SECONDS),
        "memory_target_met": bool(job and peak_bytes <= TARGET_PEAK_BYTES),
        "job_command": "dedkit " + " ".join(job_argv),
        "job_report": report,
    }
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(markdown(results))


def markdown(r: dict) -> str:
    """The figures as a markdown table, then the load and the command."""

    def s(v):
        return "-" if v is None else f"{v:.1f} s"

    rows = [
        "| what | measured | target |",
        "|---|---|---|",
        f"| movie | {r['movie']} -> {r['output']} | |",
        f"| floor: read + decode every frame | {s(r['floor_read_decode_s'])} | |",
        f"| floor: one rfft2 per frame at {r['output']} | {s(r['floor_fft_s'])} | |",
        f"| floor: total | {s(r['floor_s'])} | |",
    ]
    if r["job_wall_s"] is not None:
        rows.append(
            f"| **dedkit align**, whole command | **{s(r['job_wall_s'])}** "
            f"({r['job_ratio_to_floor']:.1f} x floor) | <= {r['target_s']:.0f} s |"
        )
        rows += [f"| &nbsp; stage: {k} | {s(v)} | |" for k, v in r["job_stages_s"].items()]
        if r["job_stages_s"]:
            rest = r["job_wall_s"] - sum(r["job_stages_s"].values())
            rows.append(
                f"| &nbsp; the rest: interpreter start, imports, JIT cache, report | {s(rest)} | |"
            )
        rows.append(
            f"| **dedkit align**, peak memory (VmHWM) | **{r['job_peak_MB']:.0f} MB** | "
            f"<= {r['target_peak_MB']:.0f} MB |"
        )
        drift = r["job_drift_input_px"]
        rows.append(
            f"| trajectory length, truth / dedkit | {2 * r['true_drift_physical_px']:.1f} / "
            f"{'-' if drift is None else f'{drift:.1f}'} super-res px | |"
        )
        if r["job_shift_rms_error_px"] is not None:
            rows.append(
                f"| global shifts, rms error against the truth | "
                f"{r['job_shift_rms_error_px']:.2f} super-res px | |"
            )
    tmc = r["tmc"]
    if tmc is not None:
        if tmc.get("finished"):
            cx, cy = tmc["crop"]
            where = f"{cx} x {cy}" + ("" if f"{cx} x {cy}" == r["output"] else " crop")
            estimate = tmc["global_s"] + tmc["local_s"] + tmc["correct_sum_s"]
            rows += [
                f"| tmc input, {where} (dedkit normalise + defects + reduce) "
                f"| {s(tmc['prepare_s'])} | |",
                f"| tmc global estimate | {s(tmc['global_s'])} | |",
                f"| tmc local refinement ({tmc['field']} spline field) | {s(tmc['local_s'])} | |",
                f"| tmc correction + sum | {s(tmc['correct_sum_s'])} | |",
                f"| **tmc** estimate + correct, total | **{s(estimate)}** | |",
                f"| tmc peak memory (VmHWM) | {tmc['peak_kb'] * 1024 / 1e6:.0f} MB | |",
                f"| tmc global trajectory length | {tmc['global_path_px']:.1f} counting px | |",
            ]
        for t in tmc.get("tries", []):
            if not t["finished"]:
                why = (
                    f"predicted {t['predicted_s']:.0f} s: {t['basis']}"
                    if t["predicted_s"]
                    else f"stopped after {t['last_stage']}"
                )
                rows.append(
                    f"| tmc on {t['crop'][0]} x {t['crop'][1]} | would not finish in the limit "
                    f"({why}) | |"
                )
    load = ", ".join(f"{v:.2f}" for v in r["load"])
    rows += ["", f"load average at the end: {load} ({r['cpu_count']} CPUs)"]
    rows.append(f"command: {r['job_command']}")
    return "\n".join(rows)


if __name__ == "__main__":
    main()

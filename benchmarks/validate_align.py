"""Validation: dedkit's aligner and torch-motion-correction on the same simulated movies.

Issue 15's "How good": simulated counting movies with known motion
(:func:`dedkit.sim.simulate_movie`, the movies of the study ``align-accuracy``,
:mod:`dedkit.studies.align_accuracy`), aligned in the same run by

- dedkit: :func:`dedkit.frames.align.estimate_motion` (global; with ``--patches`` on the
  movies with local deformation) and :class:`dedkit.frames.align.AlignedSums`;
- torch-motion-correction 0.6 (``tmc``, CPU PyTorch): ``estimate_global_motion`` (whole
  frame cross-correlation against the middle frame), and on the movies with local
  deformation ``estimate_local_motion`` (a spline field of 10 x 5 x 5 control points fitted
  by Adam over patches of 256 pixels, 50 % overlap, 100 iterations, from the global
  estimate), the sum by ``correct_motion``. Pixel spacing given as 1 A, default filters.
  tmc's field is (y, x) in A, the specimen's displacement in the frame (dedkit's sign);
  each tmc run is a child process (that simulates the same movie again) stopped after
  ``--tmc-timeout`` seconds; its seconds are those of the estimate alone.

Reported per movie and method: RMS error of the per-frame shifts and of the whole
displacement on an 8 x 8 grid (pixels, after removing a constant offset), FRC of the sum
with the true specimen at 0.25/0.5/0.75 Nyquist, and seconds of the estimate (dedkit's
sum: separate column). "true motion" is the sum corrected with the true motion; "true
global only" the field error left by the true global shifts alone (local motion ignored).

Targets: global RMS <= 0.30 px at 1024^2 x 30, 1 e/px/frame; <= 0.10 px at 4096^2; field
RMS <= 0.5 px; better than tmc on every movie.

Usage::

    python benchmarks/validate_align.py    # 1024^2 x 30 at 0.5, 1, 2 e/px; 4096^2 at 1
    python benchmarks/validate_align.py --sizes 1024 --doses 1 --no-tmc
    python benchmarks/validate_align.py --json results.json

Needs ``pip install torch-motion-correction torch-fourier-rescale`` for the tmc rows (the
CPU wheel of torch: ``-c constraints.txt``); without it the tmc rows are skipped.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time

import numpy as np

from dedkit.studies import align_accuracy as study

PIXEL_SPACING = 1.0  # A/pixel handed to tmc (its filters are in A)


# torch-motion-correction ---------------------------------------------------------------
def tmc_available() -> bool:
    try:
        import torch_motion_correction  # noqa: F401
    except ImportError:
        return False
    return True


def _tmc_field(field, shape, n_frames):
    """``whole(index, x, y) -> (dx, dy)`` in pixels from a tmc DeformationField."""
    import torch

    ny, nx = shape

    def whole(index, x, y):
        x = np.asarray(x, np.float64).ravel()
        y = np.asarray(y, np.float64).ravel()
        t = index / max(n_frames - 1, 1)
        # tmc's normalised coordinates: 0..1 over the first..last pixel (align_corners)
        tyx = np.stack([np.full_like(x, t), y / (ny - 1), x / (nx - 1)], axis=1)
        with torch.no_grad():
            yx = field(torch.as_tensor(tyx, dtype=torch.float32)).numpy() / PIXEL_SPACING
        return yx[:, 1].astype(np.float64), yx[:, 0].astype(np.float64)

    return whole


def tmc_measure(movie, *, local: bool, threads: int) -> dict:
    """Align ``movie`` with tmc (global, then the local refinement if ``local``)."""
    import torch
    from torch_motion_correction import (
        OptimizationConfig,
        PatchSamplingConfig,
        correct_motion,
        estimate_global_motion,
        estimate_local_motion,
    )

    torch.set_num_threads(threads)
    n, ny, nx = movie.frames.shape
    image = torch.from_numpy(movie.frames.astype(np.float32))
    start = time.perf_counter()
    field = estimate_global_motion(image, pixel_spacing=PIXEL_SPACING)
    if local:
        field, _ = estimate_local_motion(
            image,
            pixel_spacing=PIXEL_SPACING,
            deformation_field_resolution=(min(10, n), 5, 5),
            patch_sampling=PatchSamplingConfig(patch_shape=(256, 256), overlap=0.5),
            initial_deformation_field=field,
            optimization=OptimizationConfig(max_iterations=100),
        )
    seconds = time.perf_counter() - start
    whole = _tmc_field(field, (ny, nx), n)
    # per-frame shifts: the field at the centre (global) or its mean over the grid (local)
    gx, gy = study.grid_points((ny, nx))
    shifts = np.array([np.mean(whole(i, gx, gy), axis=1) for i in range(n)])
    rms_global, offset = study.shift_rms(shifts, movie.shifts)
    corrected = correct_motion(image, field, pixel_spacing=PIXEL_SPACING)
    total = corrected.sum(dim=0).numpy().astype(np.float64)
    bands, _ = study.frc_bands(total, movie.specimen, study._margin(movie), offset)
    return {
        "rms_global": rms_global,
        "rms_local": study.field_rms(whole, movie),
        **bands,
        "seconds": seconds,
    }


def _child(queue, case, local, threads):
    # stdout/stderr of tmc (tqdm bars) out of the table
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115
    try:
        # the same movie again (the simulation is reproducible): cheaper than sending it
        queue.put(tmc_measure(case.simulate(), local=local, threads=threads))
    except Exception as exc:  # noqa: BLE001 - reported in the table
        queue.put({"error": f"{type(exc).__name__}: {exc}"})


def tmc_in_child(case, *, local: bool, timeout: float, threads: int) -> dict:
    """tmc_measure of the movie of ``case`` (a study MovieCase) in a fresh child process
    (spawned: a fork of a process that has run threads can hang in torch), stopped after
    ``timeout`` seconds."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, case, local, threads))
    start = time.perf_counter()
    proc.start()
    try:
        result = queue.get(timeout=timeout)
    except Exception:  # noqa: BLE001 - queue.Empty: the child ran out of time
        result = {"error": f"not finished in {timeout:.0f} s"}
        proc.kill()
    proc.join()
    result.setdefault("wall", time.perf_counter() - start)
    return result


# table -----------------------------------------------------------------------------------
def fmt(value, spec):
    return "-" if value is None else format(value, spec)


def markdown(rows) -> str:
    head = (
        "| movie | e/px/frame | method | global RMS px | field RMS px | FRC .25 | FRC .50 "
        "| FRC .75 | estimate s | sum s |"
    )
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        if "error" in r:
            lines.append(
                f"| {r['movie']} | {r['dose']:g} | {r['method']} | {r['error']} | | | | | | |"
            )
            continue
        lines.append(
            f"| {r['movie']} | {r['dose']:g} | {r['method']} | {fmt(r.get('rms_global'), '.3f')} "
            f"| {fmt(r.get('rms_local'), '.3f')} | {fmt(r.get('frc_25'), '.3f')} "
            f"| {fmt(r.get('frc_50'), '.3f')} | {fmt(r.get('frc_75'), '.3f')} "
            f"| {fmt(r.get('seconds'), '.1f')} | {fmt(r.get('sum_seconds'), '.1f')} |"
        )
    return "\n".join(lines)


def verdicts(rows) -> list[str]:
    """The targets, movie by movie."""
    out = []
    by_movie = {}
    for r in rows:
        by_movie.setdefault((r["movie"], r["dose"]), {})[r["method"]] = r
    for (movie, dose), methods in by_movie.items():
        ours = methods.get("dedkit")
        if ours is None or "error" in ours:
            continue
        size = int(movie.split("x")[0].split()[-1])
        local = movie.startswith("local")
        if not local and dose == 1.0 and size in (1024, 4096):
            target = study.TARGETS["global_1k" if size == 1024 else "global_4k"]
            ok = ours["rms_global"] <= target
            out.append(
                f"{movie} at 1 e/px: global RMS {ours['rms_global']:.3f} px, target <= "
                f"{target} px: {'met' if ok else 'MISSED'}"
            )
        if local:
            ok = ours["rms_local"] <= study.TARGETS["local"]
            out.append(
                f"{movie} at {dose:g} e/px: field RMS {ours['rms_local']:.3f} px, target <= "
                f"{study.TARGETS['local']} px: {'met' if ok else 'MISSED'}"
            )
        peers = [m for k, m in methods.items() if k.startswith("tmc") and "error" not in m]
        if peers:
            best = min(min(m["rms_global"], m["rms_local"]) for m in peers)
            mine = ours["rms_local"] if local else ours["rms_global"]
            theirs = min(m["rms_local"] if local else m["rms_global"] for m in peers)
            ok = mine < theirs
            out.append(
                f"{movie} at {dose:g} e/px: dedkit {mine:.3f} px vs tmc {theirs:.3f} px "
                f"(tmc's best figure {best:.3f}): {'better' if ok else 'NOT better'}"
            )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096])
    ap.add_argument("--doses", type=float, nargs="+", default=list(study.DOSES))
    ap.add_argument("--doses-4k", type=float, nargs="+", default=[1.0])
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--drift", type=float, default=15.0)
    ap.add_argument("--local", type=float, default=3.0, help="local amplitude, px (0: none)")
    ap.add_argument("--patches", type=int, nargs=2, default=[5, 5])
    ap.add_argument("--group", type=int, default=1)
    ap.add_argument("--align-binning", type=int, default=1, help="dedkit, at 4096 only")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-tmc", action="store_true")
    ap.add_argument("--tmc-timeout", type=float, default=600.0)
    ap.add_argument("--tmc-local-all", action="store_true", help="refine global movies too")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = ap.parse_args()

    use_tmc = not args.no_tmc and tmc_available()
    if not args.no_tmc and not use_tmc:
        print("torch-motion-correction is not installed: no tmc rows", file=sys.stderr)
    rows = []
    for size in args.sizes:
        big = size > 2048
        movies = study.cases(
            size=size,
            n_frames=args.frames,
            doses=args.doses_4k if big else args.doses,
            drift=args.drift,
            local_amplitude=0.0 if big else args.local,
            patches=tuple(args.patches),
            seed=args.seed,
        )
        for case in movies:
            start = time.perf_counter()
            movie = case.simulate()
            label = f"{case.mode} {size}x{size}x{args.frames}"
            print(
                f"{label} {case.dose:g} e/px: simulated in {time.perf_counter() - start:.1f} s",
                file=sys.stderr,
            )
            base = {"movie": label, "dose": case.dose}
            ideal, _ = study.frc_bands(study.ideal_sum(movie), movie.specimen, study._margin(movie))
            rows.append({**base, "method": "true motion", **ideal})
            if movie.local is not None:
                # what ignoring the local motion leaves wrong
                rms = study.field_rms(study._true_global(movie), movie)
                rows.append({**base, "method": "true global only", "rms_local": rms})
            try:
                found = study.measure_dedkit(
                    movie,
                    patches=case.patches,
                    group=args.group,
                    align_binning=args.align_binning if big else 1,
                )
                found = {k: v for k, v in found.items() if k not in ("shifts", "frc_curve")}
            except Exception as exc:  # noqa: BLE001 - reported in the table
                found = {"error": f"{type(exc).__name__}: {exc}"}
            rows.append({**base, "method": "dedkit", **found})
            print(f"  dedkit: {found}", file=sys.stderr)
            if use_tmc:
                refine = case.mode == "local" or args.tmc_local_all
                for local in (False, True) if refine else (False,):
                    if big and local and not args.tmc_local_all:
                        continue
                    result = tmc_in_child(
                        case, local=local, timeout=args.tmc_timeout, threads=args.threads
                    )
                    method = "tmc local" if local else "tmc global"
                    rows.append({**base, "method": method, **result})
                    print(f"  {method}: {result}", file=sys.stderr)
            del movie
    print(markdown(rows))
    print()
    for line in verdicts(rows):
        print(f"- {line}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1, default=float)


if __name__ == "__main__":
    main()

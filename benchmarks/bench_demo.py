"""Benchmark: ``dedkit demo`` end to end, the README's first command (issue 17).

Target: under 5 minutes on the 2-core development machine after installation, i.e. with
nothing cached: no numba cache, no specimen image, no Geant4 track library. The script
runs ``dedkit demo -o DIR`` in a fresh process twice:

- ``cold``: ``NUMBA_CACHE_DIR`` and ``DEDKIT_CACHE`` pointing at new empty folders (a
  freshly installed dedkit: every kernel compiled, the specimen computed by abTEM, the
  track library by Geant4);
- ``warm``: the same caches again (a second run).

For each it reports the wall time, the exit status, the peak resident memory of the
process tree (``ru_maxrss`` of the children: the largest single process) and, from the
demo's ``report.json``, each part's time and checks. ``--parts camera`` or ``hpd`` runs
one part; ``--full`` the paper's scale (no target).

Usage::

    python benchmarks/bench_demo.py [--parts camera,hpd] [--full] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 300.0


def run_demo(folder: Path, env: dict, parts: list[str], full: bool) -> dict:
    launch = (
        "import sys; from dedkit.cli.launch import entry_point; "
        "sys.argv[0] = 'dedkit'; entry_point()"
    )
    command = [sys.executable, "-c", launch, "demo", *parts, "-o", str(folder)]
    if full:
        command.append("--full")
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out = {"command": "dedkit " + " ".join(command[3:]), "wall_s": round(wall, 1),
           "exit": done.returncode,
           "peak_rss_GB_largest_process": round(peak_kb / 2**20, 2)}  # fmt: skip
    report = folder / "report.json"
    if report.exists():
        summary = json.loads(report.read_text())
        out["parts"] = {
            p["name"]: {
                "seconds": round(p.get("seconds", 0.0), 1),
                "checks": [(c["what"], c["value"], c["passed"]) for c in p.get("checks", [])],
            }
            for p in summary.get("parts", [])
        }
    if done.returncode not in (0, 1):
        out["stderr"] = done.stderr[-2000:]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="", help="camera, hpd or both (default both)")
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    parts = [p for p in args.parts.split(",") if p]
    if len(parts) > 1:
        parts = []  # both parts is the default
    work = Path(tempfile.mkdtemp(prefix="bench-demo-"))
    env = dict(os.environ)
    env["NUMBA_CACHE_DIR"] = str(work / "numba")
    env["DEDKIT_CACHE"] = str(work / "cache")
    results = {"target_s": TARGET_S, "cores": os.cpu_count()}
    try:
        for label in ("cold", "warm"):
            result = run_demo(work / f"demo-{label}", env, parts, args.full)
            results[label] = result
            print(f"{label}: {result['wall_s']:.0f} s, exit {result['exit']}, "
                  f"target {TARGET_S:.0f} s: "
                  f"{'met' if result['wall_s'] < TARGET_S else 'NOT met'}")  # fmt: skip
            for name, part in result.get("parts", {}).items():
                checks = ", ".join(f"{w}: {v} ({'pass' if ok else 'FAIL'})"
                                   for w, v, ok in part["checks"])  # fmt: skip
                print(f"  {name}: {part['seconds']:.0f} s; {checks}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()

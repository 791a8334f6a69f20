"""Benchmark: CNN localisation speed and accuracy on CPU (issue 6).

Target: >= 20,000 clusters/s on 2 CPU cores, batched, with no loss of accuracy beyond
0.02 px against the paper's network (MÖNCH paper, 0.47 px at 200 keV).

In one run, on the same held-out clusters (a training set of ``dedkit sim dataset``,
default ``test200_s2.h5``), with ``torch.set_num_threads(THREADS)``:

- the charge centroid (``CentroidLocalizer`` on the 15 x 15 crops, numba), clusters/s and
  RMSE per axis;
- for every model given (default: the shipped one) and, for speed only, an untrained
  network of the paper's architecture (7 x 64 channels) unless a trained one is given:
  each inference variant below, clusters/s (best of ``--repeats``) and RMSE, and the
  largest change of any prediction from the plain float32 result:

  - ``eager``: float32, plain PyTorch, batch ``--batch``;
  - ``CnnLocalizer``: what ``dedkit hpd localize --method cnn`` runs (channels-last,
    batches of 2048);
  - ``eager-b1024``: ``eager`` with batches of 1024;
  - ``channels-last``: tensors and weights in channels-last memory format;
  - ``torchscript``: traced, frozen and optimised for inference;
  - ``torchscript+channels-last``: both;
  - ``compile``: ``torch.compile`` (inductor; skipped with a note if it fails);
  - ``bf16``: CPU autocast to bfloat16;
  - ``int8-dynamic``: dynamic int8 quantisation of the linear layers (the convolutions
    stay float32: PyTorch's dynamic quantisation covers only linear and recurrent
    layers).

Usage: python benchmarks/bench_localize.py [--data test200_s2.h5] [--n 30000]
       [--model M.json ...] [--threads 2] [--batch 8192] [--repeats 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

import numpy as np

BF16_N = 2048


def _rmse(predicted, truth) -> dict:
    r = np.asarray(predicted, np.float64) - np.asarray(truth, np.float64)
    return {a: float(np.sqrt(np.mean(r[:, i] ** 2))) for i, a in enumerate("xy")}


def _time(fn, repeats: int) -> tuple[float, np.ndarray]:
    out = fn()  # warm-up (and compilation)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - started)
    return best, out


def _runner(model, images, features, batch, *, memory_format=None, autocast=False):
    import torch

    x_all = torch.from_numpy(images).unsqueeze(1)
    f_all = torch.from_numpy(features)
    if memory_format is not None:
        x_all = x_all.contiguous(memory_format=memory_format)

    def run():
        out = np.empty((len(images), 2), np.float64)
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=autocast):
            for first in range(0, len(images), batch):
                y = model(x_all[first : first + batch], f_all[first : first + batch])
                out[first : first + len(y)] = y.float().numpy()
        return out

    return run


def variants(model, images, features, batch, localizer=None):
    """(name, callable returning predictions) for every inference variant."""
    import copy

    import torch

    yield "eager", _runner(model, images, features, batch)
    if localizer is not None:
        yield (
            "CnnLocalizer (channels-last, batch 2048)",
            lambda: localizer.positions(images, features),
        )
    yield "eager-b1024", _runner(model, images, features, 1024)
    cl = copy.deepcopy(model).to(memory_format=torch.channels_last)
    yield "channels-last", _runner(cl, images, features, batch, memory_format=torch.channels_last)
    example = (torch.from_numpy(images[:batch]).unsqueeze(1), torch.from_numpy(features[:batch]))
    with torch.inference_mode(False), torch.no_grad():
        traced = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model, example)))
    yield "torchscript", _runner(traced, images, features, batch)
    example_cl = (example[0].contiguous(memory_format=torch.channels_last), example[1])
    with torch.inference_mode(False), torch.no_grad():
        traced_cl = torch.jit.optimize_for_inference(
            torch.jit.freeze(torch.jit.trace(cl, example_cl))
        )
    yield (
        "torchscript+channels-last",
        _runner(traced_cl, images, features, batch, memory_format=torch.channels_last),
    )
    try:
        compiled = torch.compile(copy.deepcopy(model), dynamic=False)
        run = _runner(compiled, images, features, batch)
        run()
        yield "compile", run
    except Exception as error:  # noqa: BLE001 - a missing compiler is a result, not a crash
        yield "compile", f"failed: {type(error).__name__}: {str(error).splitlines()[0][:80]}"
    # this CPU has no bfloat16 instructions: bf16 is ~10x slower, so it is timed on the
    # first BF16_N clusters only (its predictions compared with float32's on those)
    yield "bf16", _runner(model, images[:BF16_N], features[:BF16_N], batch, autocast=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantised = torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8
        )
    yield "int8-dynamic", _runner(quantised, images, features, batch)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/work/dedkit_data/test200_s2.h5")
    parser.add_argument("--n", type=int, default=30000)
    parser.add_argument("--model", action="append", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-paper", action="store_true", help="Skip the untrained paper net.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    import torch

    from dedkit.hpd.localize import CentroidLocalizer
    from dedkit.learn.data import load_training_arrays
    from dedkit.learn.localizer import CnnLocalizer
    from dedkit.learn.model import Architecture, build_model, network_from_arrays
    from dedkit.learn.store import default_model_path, load_model
    from dedkit.records.tables import ClusterTable

    torch.set_num_threads(args.threads)
    data = load_training_arrays(args.data, args.n)
    images, features, truth = data.images, data.features, data.targets
    n = len(images)
    rows = []

    table = ClusterTable(np.zeros(n, np.int64), np.zeros(n, np.int32), np.zeros(n, np.int32),
                         images, units="keV", features=features)  # fmt: skip
    centroid = CentroidLocalizer()
    seconds, events = _time(lambda: centroid.localize(table), args.repeats)
    # x = reference (0) - crop // 2 + centroid in the crop: relative to the crop centre
    predicted = np.stack([events.x, events.y], axis=1) - 0.5
    rows.append({"method": "centroid", "variant": "numba", "clusters_per_s": n / seconds,
                 "rmse_px": _rmse(predicted, truth), "max_change_px": None})  # fmt: skip

    models = []
    for path in args.model or [str(default_model_path())]:
        state, card = load_model(path)
        arch = Architecture.from_dict(card["architecture"])
        label = f"{arch.name} ({path.split('/')[-1]})"
        models.append((label, network_from_arrays(arch, state), CnnLocalizer(path)))
    if not args.no_paper and not any(m[1].arch.name == "paper" for m in models):
        torch.manual_seed(0)
        models.append(("paper (untrained: speed only)", build_model("paper").eval(), None))

    for label, model, localizer in models:
        trained = localizer is not None
        reference = None
        for name, run in variants(model, images, features, args.batch, localizer):
            if isinstance(run, str):
                rows.append({"method": label, "variant": name, "clusters_per_s": None,
                             "rmse_px": None, "max_change_px": None, "note": run})  # fmt: skip
                continue
            seconds, out = _time(run, args.repeats)
            if reference is None:
                reference = out
            m = len(out)
            rows.append({
                "method": label, "variant": name, "clusters_per_s": m / seconds,
                "rmse_px": _rmse(out, truth[:m]) if trained and m == n else None,
                "max_change_px": float(np.abs(out - reference[:m]).max()),
                "note": f"timed on {m}" if m != n else "",
            })  # fmt: skip
            print(f"{label:40s} {name:26s} {m / seconds:12.0f} clusters/s", file=sys.stderr)

    result = {"n_clusters": n, "threads": args.threads, "batch": args.batch,
              "torch": torch.__version__, "data": args.data, "rows": rows}  # fmt: skip
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{n} clusters of {args.data}, {args.threads} threads, batch {args.batch}, "
          f"torch {torch.__version__}")  # fmt: skip
    print("| method | variant | clusters/s | RMSE x (px) | RMSE y (px) | max change (px) |")
    print("|---|---|---:|---:|---:|---:|")
    for r in rows:
        speed = f"{r['clusters_per_s']:,.0f}" if r["clusters_per_s"] else r.get("note", "-")
        rx = f"{r['rmse_px']['x']:.3f}" if r["rmse_px"] else "-"
        ry = f"{r['rmse_px']['y']:.3f}" if r["rmse_px"] else "-"
        change = f"{r['max_change_px']:.4f}" if r["max_change_px"] is not None else "-"
        variant = r["variant"] + (
            f" ({r['note']})" if r.get("note") and r["clusters_per_s"] else ""
        )
        print(f"| {r['method']} | {variant} | {speed} | {rx} | {ry} | {change} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

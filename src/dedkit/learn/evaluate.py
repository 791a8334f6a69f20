"""Accuracy of the CNN beside the charge centroid and eta interpolation (paper section 3.3).

On a held-out training set (``dedkit sim dataset`` with another seed) every method
localises the same clusters and is compared with the true entry point:

- **cnn**: the network (default the shipped model);
- **centroid**: the connected finder's charge centroid stored with each cluster;
- **eta**: dedkit's :class:`~dedkit.hpd.localize.EtaInterpolator` (eta2, aare's
  conditional linearisation, 100 x 100 bins, 1 energy bin) on the 3 x 3 pixels around
  each crop's **maximum** (eta is defined around the local maximum, as aare's finder
  centres clusters; the crop itself is centred on the charge centroid), its flat-field map
  fitted on ``eta_reference`` (default: the evaluated clusters themselves; their entry
  points are uniform within a pixel, so they are a flat field, and no truth is used).

Residual = predicted - true, per axis, in pixels. Clusters are split as in the paper's
figure 5: **fully absorbed** (deposit >= 95 % of the beam energy) and **backscattered**
(below; the simulation's own backscatter flag is reported beside it).

This module compares and draws; it writes no files: ``dedkit learn evaluate``
(:func:`dedkit.jobs.learn.evaluate_model`) checks its outputs, writes the figure and
records the results on a model card.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dedkit.hpd.localize import EtaInterpolator
from dedkit.learn.data import check_crop, load_training_arrays
from dedkit.records.tables import ClusterTable
from dedkit.report import JobReport

__all__ = [
    "EvaluationReport",
    "FULL_ABSORPTION",
    "compare_methods",
    "eta_positions",
    "residual_figure",
]

#: Fraction of the beam energy above which an electron counts as fully absorbed
FULL_ABSORPTION = 0.95
METHODS = ("cnn", "eta", "centroid")


def _max_pixel_table(images: np.ndarray) -> ClusterTable:
    # 3 x 3 around each crop's maximum (zero padding where the maximum is on the border)
    n, size, _ = images.shape
    flat = images.reshape(n, -1).argmax(axis=1)
    row, column = np.divmod(flat, size)
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1)))
    offsets = np.arange(3)
    rows = row[:, None, None] + offsets[None, :, None]
    columns = column[:, None, None] + offsets[None, None, :]
    data = padded[np.arange(n)[:, None, None], rows, columns].astype(np.float64)
    return ClusterTable(
        np.zeros(n, np.int64), column.astype(np.int32), row.astype(np.int32), data, units="keV"
    )


def eta_positions(images, reference_images=None, *, kind: str = "eta2", bins: int = 100):
    """Eta-interpolated positions (n, 2) in pixels from the crop centre.

    Parameters
    ----------
    images : (n, s, s) array
        Crops in keV.
    reference_images : (m, s, s) array, optional
        Flat-field crops for the map (default ``images``).
    kind : {'eta2', 'eta3'}
    bins : int
    """
    images = np.asarray(images)
    table = _max_pixel_table(images)
    reference = (
        table if reference_images is None else _max_pixel_table(np.asarray(reference_images))
    )
    interpolator = EtaInterpolator(kind).fit(reference, bins=bins)
    events = interpolator.localize(table)
    centre = images.shape[-1] / 2
    return np.stack([events.x - centre, events.y - centre], axis=1)


def _summary(residual: np.ndarray) -> dict:
    if len(residual) == 0:
        return {"rmse_px": None, "mean_residual_px": None}
    return {
        "rmse_px": {a: float(np.sqrt(np.mean(residual[:, i] ** 2))) for i, a in enumerate("xy")},
        "mean_residual_px": {a: float(np.mean(residual[:, i])) for i, a in enumerate("xy")},
    }


@dataclass(kw_only=True)
class EvaluationReport(JobReport):
    """Accuracy of the three methods on one set (:meth:`to_dict` is the ``--json``)."""

    dataset: str
    model: str
    n_clusters: int
    residuals: dict = field(repr=False)
    groups: dict = field(repr=False)
    seconds: float = 0.0
    figure: str | None = None
    figure_note: str | None = None
    details: dict = field(default_factory=dict)

    def _by_method(self, mask=None) -> dict:
        return {m: _summary(r if mask is None else r[mask]) for m, r in self.residuals.items()}

    def to_dict(self) -> dict:
        overall = self._by_method()
        out = {
            "dataset": self.dataset,
            "model": self.model,
            "n_clusters": self.n_clusters,
            "rmse_px": {m: v["rmse_px"] for m, v in overall.items()},
            "mean_residual_px": {m: v["mean_residual_px"] for m, v in overall.items()},
            "cnn_to_centroid": {
                a: overall["cnn"]["rmse_px"][a] / overall["centroid"]["rmse_px"][a] for a in "xy"
            },
        }
        for name, mask in self.groups.items():
            group = self._by_method(mask)
            out[name] = {
                "n": int(mask.sum()),
                "fraction": float(mask.mean()),
                "rmse_px": {m: v["rmse_px"] for m, v in group.items()},
                "mean_residual_px": {m: v["mean_residual_px"] for m, v in group.items()},
            }
        out.update(self.details)
        out["figure"] = self.figure
        out["seconds"] = round(self.seconds, 2)
        return out

    def text(self) -> str:
        d = self.to_dict()
        lines = [f"{self.n_clusters} clusters of {self.dataset}, model {self.model}"]
        lines.append(f"{'':22s}{'cnn x':>8s}{'cnn y':>8s}{'eta x':>8s}{'eta y':>8s}"
                     f"{'centr x':>9s}{'centr y':>9s}")  # fmt: skip
        for label, block in (
            ("RMSE (px)", d),
            ("fully absorbed", d["fully_absorbed"]),
            ("backscattered", d["backscattered"]),
        ):
            r = block["rmse_px"]
            if r["cnn"] is None:
                continue
            extra = f" ({block['fraction']:.1%})" if "fraction" in block else ""
            lines.append(
                f"{(label + extra):22s}{r['cnn']['x']:8.3f}{r['cnn']['y']:8.3f}"
                f"{r['eta']['x']:8.3f}{r['eta']['y']:8.3f}"
                f"{r['centroid']['x']:9.3f}{r['centroid']['y']:9.3f}"
            )
        m = d["mean_residual_px"]
        lines.append(
            f"{'mean residual (px)':22s}{m['cnn']['x']:8.3f}{m['cnn']['y']:8.3f}"
            f"{m['eta']['x']:8.3f}{m['eta']['y']:8.3f}"
            f"{m['centroid']['x']:9.3f}{m['centroid']['y']:9.3f}"
        )
        ratio = d["cnn_to_centroid"]
        lines.append(f"CNN / centroid RMSE: x {ratio['x']:.3f}, y {ratio['y']:.3f}")
        if self.figure:
            lines.append(f"figure: {self.figure}")
        elif self.figure_note:
            lines.append(self.figure_note)
        return "\n".join(lines)


def compare_methods(
    data,
    localizer,
    *,
    dataset,
    model,
    eta_reference=None,
    check_energy: bool = True,
) -> EvaluationReport:
    """Localise the clusters of a held-out set by the CNN, eta and the centroid and
    compare each with the true entry points (nothing is written).

    Parameters
    ----------
    data : dedkit.learn.data.ClusterArrays
        The set's arrays (:func:`dedkit.learn.data.load_training_arrays`).
    localizer : dedkit.learn.localizer.CnnLocalizer
        The network.
    dataset, model : path-like
        Where ``data`` and the model came from (named by the report and the errors).
    eta_reference : path-like, optional
        Training set whose clusters build the eta map (default: ``data``).
    check_energy : bool
        Refuse a set whose energy or sensor differs from the model card.

    Returns
    -------
    EvaluationReport
        Its ``seconds`` and ``figure`` are the caller's to fill.
    """
    from dedkit.learn.localizer import check_model_matches

    check_crop(data, localizer.crop, dataset)
    if check_energy:
        check_model_matches(localizer.card, beam_energy_keV=data.energy_keV, sensor=data.sensor)
    cnn = localizer.positions(data.images, data.features)
    reference = None
    if eta_reference is not None:
        reference = load_training_arrays(eta_reference).images
    eta = eta_positions(data.images, reference)
    truth = data.targets.astype(np.float64)
    residuals = {"cnn": cnn - truth, "eta": eta - truth, "centroid": data.centroid - truth}
    energy = data.energy_keV or float(np.median(data.features[:, -1]))
    fully = data.deposit_keV >= FULL_ABSORPTION * energy
    report = EvaluationReport(
        command="learn evaluate",
        dataset=str(dataset),
        model=str(model),
        n_clusters=len(data),
        residuals=residuals,
        groups={"fully_absorbed": fully, "backscattered": ~fully},
        details={
            "energy_keV": energy,
            "full_absorption_threshold_keV": FULL_ABSORPTION * energy,
            "backscatter_flag_in_backscattered": float(data.backscattered[~fully].mean())
            if (~fully).any()
            else None,
            "eta": {
                "kind": "eta2",
                "around": "crop maximum",
                "bins": 100,
                "reference": str(eta_reference or dataset),
            },  # fmt: skip
            "architecture": localizer.card.get("architecture", {}).get("name"),
        },
    )
    return report


def residual_figure(report: EvaluationReport, card: dict):
    """Residual histograms (x) of the three methods, split by absorption, beside the
    model's loss curves when its card holds them; drawn, not written.

    Returns
    -------
    matplotlib.figure.Figure or None
        With an Agg canvas (no pyplot state); None when matplotlib is not installed.
    """
    try:
        # the object API with the Agg canvas: no pyplot state, no display needed
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    history = card.get("training", {}).get("history") or []
    panels = 4 if history else 3
    fig = Figure(figsize=(4.2 * panels, 3.6), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, panels)
    bins = np.linspace(-5, 5, 101)
    labels = {"cnn": "CNN", "eta": "eta2", "centroid": "charge centroid"}
    for ax, method in zip(axes, METHODS, strict=False):
        r = report.residuals[method][:, 0]
        rmse = np.sqrt(np.mean(r**2))
        ax.hist(r, bins, histtype="step", color="k", label=f"all: RMSE {rmse:.2f}")
        for (name, mask), colour in zip(report.groups.items(), ("C0", "C3"), strict=True):
            if mask.any():
                sub = r[mask]
                ax.hist(sub, bins, histtype="step", color=colour,
                        label=f"{name.replace('_', ' ')} {mask.mean():.0%}: "
                              f"RMSE {np.sqrt(np.mean(sub**2)):.2f}, "
                              f"mean {sub.mean():+.2f}")  # fmt: skip
        ax.set_title(labels[method])
        ax.set_xlabel("x residual (px)")
        ax.legend(fontsize=7, loc="upper left")
    if history:
        ax = axes[3]
        epochs = [h["epoch"] for h in history]
        ax.plot(epochs, [h["train_loss"] for h in history], "o-", ms=3, label="training")
        ax.plot(epochs, [h["test_loss"] for h in history], "s-", ms=3, label="test")
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("MSE (px$^2$)")
        ax.set_title("loss")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig

"""The 'cnn' localiser: the trained network behind :func:`dedkit.hpd.localize.get_localizer`.

This module imports no torch at import time: it registers :class:`CnnLocalizer` with
:func:`~dedkit.hpd.localize.register_localizer`, and torch is imported when a
localiser is built. Importing :mod:`dedkit.hpd` never imports it at all.
"""

from __future__ import annotations

import numpy as np

from dedkit.errors import DedkitError
from dedkit.hpd.localize import Localizer, register_localizer
from dedkit.io.model_files import model_paths
from dedkit.learn.store import default_model_path, load_model, read_card
from dedkit.records.tables import ClusterTable, EventTable

__all__ = ["CnnLocalizer", "check_model_matches"]

#: Relative tolerance on energy, thickness and pitch when data are checked against a card
_TOLERANCE = 1e-3


def _differs(a, b) -> bool:
    return abs(float(a) - float(b)) > _TOLERANCE * max(abs(float(a)), abs(float(b)), 1e-12)


def check_model_matches(card: dict, *, beam_energy_keV=None, sensor: dict | None = None) -> None:
    """Refuse data the model was not trained for.

    Parameters
    ----------
    card : dict
        The model card.
    beam_energy_keV : float, optional
        The data's beam energy (not checked when None).
    sensor : dict, optional
        ``thickness_um`` and/or ``pitch_um`` of the data's sensor (each checked when given).

    Raises
    ------
    DedkitError
        One line naming what differs.
    """
    model_energy = card.get("energy_keV")
    if beam_energy_keV is not None and model_energy is not None:
        if _differs(beam_energy_keV, model_energy):
            raise DedkitError(
                f"the CNN model was trained for {model_energy:g} keV, the data are "
                f"{float(beam_energy_keV):g} keV; train a model for this energy "
                "(dedkit learn train) and give it with --model"
            )
    model_sensor = card.get("sensor") or {}
    for key, label in (("thickness_um", "sensor thickness"), ("pitch_um", "pixel pitch")):
        ours, theirs = (sensor or {}).get(key), model_sensor.get(key)
        if ours is not None and theirs is not None and _differs(ours, theirs):
            raise DedkitError(
                f"the CNN model was trained for a {label} of {theirs:g} um, the data's is "
                f"{float(ours):g} um"
            )


class CnnLocalizer(Localizer):
    """Impact points from the trained network (the MÖNCH paper's deep-learning method).

    Parameters
    ----------
    model : path-like, optional
        ``M.npz`` / ``M.json``; default the shipped 200 keV model.
    beam_energy_keV : float, optional
        The data's beam energy, checked against the model card.
    sensor : dict, optional
        The data's ``thickness_um`` / ``pitch_um``, checked against the card.
    batch_size : int
        Clusters per forward pass (2048 with channels-last tensors was the fastest on a
        2-core CPU, see ``benchmarks/bench_localize.py``).
    threads : int, optional
        torch CPU threads.

    Notes
    -----
    Needs the connected finder's clusters: crops in keV of the model's size with the 7
    features. Positions are ``reference pixel + 0.5 + network output``.
    """

    name = "cnn"

    def __init__(
        self,
        model=None,
        *,
        beam_energy_keV=None,
        sensor: dict | None = None,
        batch_size: int = 2048,
        threads: int | None = None,
    ):
        path = default_model_path() if model is None else model
        self.card = read_card(path)
        check_model_matches(self.card, beam_energy_keV=beam_energy_keV, sensor=sensor)
        try:
            import torch
        except ImportError:
            raise DedkitError(
                "the cnn method needs PyTorch: pip install -c constraints.txt 'dedkit[learn]'"
            ) from None
        from dedkit.learn.model import Architecture, network_from_arrays

        state, self.card = load_model(path)
        self.model_path = path
        weights_path, self.card_path = model_paths(path)
        network = network_from_arrays(
            Architecture.from_dict(self.card["architecture"]), state, path=weights_path
        )
        self.network = network.to(memory_format=torch.channels_last)
        self.batch_size = int(batch_size)
        if threads:
            torch.set_num_threads(int(threads))

    def positions(self, images, features) -> np.ndarray:
        """Network output (n, 2): (x, y) in pixels from the crop centre."""
        from dedkit.learn.model import predict

        return predict(
            self.network, images, features, batch_size=self.batch_size, channels_last=True
        )

    @property
    def crop(self) -> int:
        """Side of the crops the network takes."""
        return int(
            self.card.get("input", {}).get("crop", self.card["architecture"].get("crop", 15))
        )

    def localize(self, table: ClusterTable) -> EventTable:
        crop = self.crop
        if table.units != "keV" or table.features is None:
            raise DedkitError(
                "the cnn method needs the connected finder's clusters (keV crops with the 7 "
                "features): run 'dedkit hpd clusters --finder connected --gain ...'"
            )
        if table.data.ndim != 3 or table.cluster_shape != (crop, crop):
            raise DedkitError(
                f"the CNN model takes {crop} x {crop} crops, the clusters are "
                f"{' x '.join(map(str, table.data.shape[1:][::-1]))}",
                path=self.card_path,
            )
        offsets = (
            self.positions(table.data, table.features)
            if len(table)
            else np.zeros((0, 2), dtype=np.float64)
        )
        return EventTable(
            np.asarray(table.frame, dtype=np.int64).copy(),
            np.asarray(table.x, dtype=np.float64) + 0.5 + offsets[:, 0],
            np.asarray(table.y, dtype=np.float64) + 0.5 + offsets[:, 1],
            table.features[:, 0].astype(np.float32),
            self.name,
        )


register_localizer("cnn", CnnLocalizer)

"""Electron transport in the silicon sensor with Geant4: energy deposits per electron.

The modules, one idea each:

- :mod:`~dedkit.sim.transport.settings`: :class:`TransportSettings` (every setting and its
  one default), the physics lists, :func:`geant4_available`;
- :mod:`~dedkit.sim.transport.simulate`: :func:`transport_electrons` (settings in,
  :class:`~dedkit.records.deposits.ElectronDeposits` batches out), its keyword form
  :func:`simulate_electrons` / :func:`iter_simulate_electrons`, and the seeding of the
  batches;
- :mod:`~dedkit.sim.transport.tally`: the headline figures (:class:`TransportTally`,
  :func:`transport_summary`);
- :mod:`~dedkit.sim.transport.workers`: the Geant4 worker processes (crashes, retries).

The Geant4 application the workers run is :mod:`dedkit.sim._geant4_app`; nothing in this
package imports Geant4.
"""

from dedkit.sim.transport.settings import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CUT_UM,
    DEFAULT_EDGE_MARGIN_UM,
    DEFAULT_PHYSICS,
    DEFAULT_SEGMENT_UM,
    ENTRIES,
    GEANT4_MISSING,
    MSC_STEP_LIMITS,
    NEEDS_DATA,
    PHYSICS_LISTS,
    TransportSettings,
    check_physics,
    direction_from_angles,
    geant4_available,
)
from dedkit.sim.transport.simulate import (
    iter_simulate_electrons,
    simulate_electrons,
    transport_electrons,
)
from dedkit.sim.transport.tally import TransportTally, transport_summary

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_CUT_UM",
    "DEFAULT_EDGE_MARGIN_UM",
    "DEFAULT_PHYSICS",
    "DEFAULT_SEGMENT_UM",
    "ENTRIES",
    "GEANT4_MISSING",
    "MSC_STEP_LIMITS",
    "NEEDS_DATA",
    "PHYSICS_LISTS",
    "TransportSettings",
    "TransportTally",
    "check_physics",
    "direction_from_angles",
    "geant4_available",
    "iter_simulate_electrons",
    "simulate_electrons",
    "transport_electrons",
    "transport_summary",
]

"""The Geant4 application that runs inside the worker processes of
:mod:`dedkit.sim.transport`.

Only worker processes import this module (the parent never loads Geant4: the interpreter
may crash at exit once Geant4 has run, and a fatal Geant4 exception aborts the process).
A worker:

1. sends everything Geant4 prints to a log file (so it never reaches the parent's
   stdout, where a ``--json`` report goes);
2. prepares the offline data recipe of ``docs/simulation.md``: every ``G4*DATA``
   variable points at an existing empty directory, the ENSDF state directory holds an
   empty ``ENSDFSTATE.dat``, and ``GEANT4_DATA_DIR`` is set before the import so that
   ``geant4_pybind`` does not offer to download the data sets;
3. builds the world (vacuum) and the silicon sensor, the physics list and the user
   actions once, then removes bremsstrahlung from e-/e+ and every process except
   Transportation from all other particles (those need data sets; photons leave without
   interacting and their energy is lost from the sensor, below 0.3 % at these energies);
4. answers batch requests from the parent: reseeds the engine from the batch's seeds,
   runs the batch, turns the recorded steps into deposits with numpy, writes them to an
   ``.npz`` file under a temporary name, renames it into place
   (:func:`dedkit.io.npz.write_npz`) and only then tells the parent, so a crash
   afterwards loses nothing;
5. on ``stop`` leaves with ``os._exit(0)``, skipping the interpreter teardown in which
   Geant4 may crash.

Coordinates: the sensor is placed so that its own frame (``docs/simulation.md``,
:mod:`dedkit.records.sensor`) is Geant4's global frame shifted by half the sensor size;
the shift is undone in numpy.
"""

from __future__ import annotations

import os
import sys
import time
import traceback

import numpy as np

from dedkit.io.npz import write_npz

#: (environment variable, data set directory) of every data set geant4_pybind knows
G4_DATASETS = (
    ("G4NEUTRONHPDATA", "G4NDL"),
    ("G4LEDATA", "G4EMLOW"),
    ("G4LEVELGAMMADATA", "PhotonEvaporation"),
    ("G4RADIOACTIVEDATA", "RadioactiveDecay"),
    ("G4PARTICLEXSDATA", "G4PARTICLEXS"),
    ("G4PIIDATA", "G4PII"),
    ("G4REALSURFACEDATA", "RealSurface"),
    ("G4SAIDXSDATA", "G4SAIDDATA"),
    ("G4ABLADATA", "G4ABLA"),
    ("G4INCLDATA", "G4INCL"),
    ("G4ENSDFSTATEDATA", "G4ENSDFSTATE"),
    ("G4CHANNELINGDATA", "G4CHANNELING"),
)

#: Geant4 name of each msc step-limit choice (the /process/msc/StepLimit command)
MSC_COMMAND = {
    "minimal": "Minimal",
    "safety": "UseSafety",
    "safety-plus": "UseSafetyPlus",
    "distance-to-boundary": "UseDistanceToBoundary",
}

#: margin of vacuum around the sensor, um (room for the gun 1 um before the entry face
#: at up to 85 degrees incidence)
WORLD_MARGIN_UM = 100.0
#: the gun fires from this far before the entry face (along the beam), um
GUN_STANDOFF_UM = 1.0


def prepare_offline_environment(root: str) -> None:
    """Point every Geant4 data variable at an empty directory under ``root``."""
    for var, name in G4_DATASETS:
        path = os.path.join(root, name)
        os.makedirs(path, exist_ok=True)
        os.environ[var] = path
    ensdf = os.path.join(os.environ["G4ENSDFSTATEDATA"], "ENSDFSTATE.dat")
    if not os.path.exists(ensdf):
        open(ensdf, "w").close()
    os.environ["GEANT4_DATA_DIR"] = root


def worker_main(conn, settings: dict, workdir: str, log_path: str) -> None:
    """Body of one worker process (see the module docstring)."""
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(log, 1)
    os.dup2(log, 2)
    batch = None
    try:
        prepare_offline_environment(os.path.join(workdir, "g4data"))
        app = Application(settings)
        conn.send(("ready", app.info()))
        while True:
            message = conn.recv()
            if message[0] == "stop":
                break
            _, batch, spec = message
            path = app.run_batch(batch, spec, workdir)
            conn.send(("done", batch, path))
            batch = None
    except EOFError:
        pass  # the parent went away: nothing to deliver to
    except BaseException as e:  # noqa: BLE001 - reported to the parent, then exit
        traceback.print_exc()
        try:
            conn.send(("error", batch, f"{type(e).__name__}: {e}"))
        except OSError:
            pass
        _leave(conn, 1)
    _leave(conn, 0)


def _leave(conn, status: int) -> None:
    try:
        conn.close()
    except OSError:
        pass
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


class Application:
    """Geometry, physics and user actions, built once per worker process."""

    def __init__(self, settings: dict):
        import geant4_pybind as g4

        self.g4 = g4
        self.settings = settings
        sensor = settings["sensor"]
        self.thickness = float(sensor["thickness_um"])
        self.width = sensor["nx"] * float(sensor["pitch_um"])
        self.height = sensor["ny"] * float(sensor["pitch_um"])
        self.energy_keV = float(settings["energy_keV"])

        self.engine = g4.MixMaxRng()
        g4.HepRandom.setTheEngine(self.engine)

        self.run_manager = g4.G4RunManagerFactory.CreateRunManager(g4.G4RunManagerType.Serial)
        self.run_manager.SetVerboseLevel(0)
        self.detector = _make_detector(g4, self)
        self.run_manager.SetUserInitialization(self.detector)
        self.physics = _make_physics_list(g4, settings)
        self.run_manager.SetUserInitialization(self.physics)

        # per-batch buffers filled by the user actions
        self.steps: list[float] = []
        self.event_ends: list[int] = []
        self.primary_end: list[tuple] = []
        self.actions = _make_actions(g4, self)
        self.run_manager.SetUserInitialization(self.actions)
        self.run_manager.Initialize()
        ui = g4.G4UImanager.GetUIpointer()
        cut = float(settings["production_cut_um"])
        ui.ApplyCommand(f"/run/setCut {cut!r} um")
        _remove_data_dependent_processes(g4)
        # a run of no events builds the physics and cut tables
        self.run_manager.BeamOn(0)
        self.electron_threshold_keV = self._electron_threshold_keV(cut)

    def _electron_threshold_keV(self, cut_um: float) -> float:
        g4 = self.g4
        table = g4.G4ProductionCutsTable.GetProductionCutsTable()
        electron = g4.G4ParticleTable.GetParticleTable().FindParticle("e-")
        silicon = g4.G4NistManager.Instance().FindOrBuildMaterial("G4_Si")
        return table.ConvertRangeToEnergy(electron, silicon, cut_um * g4.um) / g4.keV

    def info(self) -> dict:
        return {
            "geant4_version": self.g4.G4Version.strip("$ ").replace("Name: ", ""),
            "electron_threshold_keV": self.electron_threshold_keV,
            "pid": os.getpid(),
        }

    # ----- one batch ------------------------------------------------------------------
    def run_batch(self, batch: int, spec: dict, workdir: str) -> str:
        """Simulate the primaries of ``spec`` and write their deposits; returns the path."""
        g4 = self.g4
        x = np.asarray(spec["entry_x_um"], np.float64)
        y = np.asarray(spec["entry_y_um"], np.float64)
        d = np.asarray(spec["direction"], np.float64)
        n = len(x)
        # gun positions in Geant4's frame (mm): GUN_STANDOFF_UM before the entry point
        back = GUN_STANDOFF_UM / d[:, 2]
        self.gun_x = ((x - back * d[:, 0]) - self.width / 2) * g4.um
        self.gun_y = ((y - back * d[:, 1]) - self.height / 2) * g4.um
        self.gun_z = (-back * d[:, 2] - self.thickness / 2) * g4.um
        self.gun_d = d
        self.steps.clear()
        self.event_ends.clear()
        self.primary_end.clear()
        # the binding reads the seeds up to a terminating zero, as CLHEP does
        g4.HepRandom.setTheSeeds([int(s) for s in spec["engine_seeds"]] + [0])
        t0 = time.perf_counter()
        self.run_manager.BeamOn(n)
        seconds = time.perf_counter() - t0
        if len(self.event_ends) != n or len(self.primary_end) != n:
            raise RuntimeError(
                f"batch {batch}: Geant4 ran {len(self.event_ends)} events and ended "
                f"{len(self.primary_end)} primaries instead of {n}"
            )
        out = self._deposits(n, float(spec["segment_um"]))
        out.update(
            entry_x_um=x,
            entry_y_um=y,
            direction=d,
            geant4_seconds=np.float64(seconds),
            raw_steps=np.int64(len(self.steps) // 7),
        )
        path = os.path.join(workdir, f"batch-{batch:06d}.npz")
        # a working file of the parent's, not an output: not listed as written
        write_npz(path, out, record=False)
        return path

    def _vacuum_path(self, end: np.ndarray) -> np.ndarray:
        """Path of each primary outside the sensor, um: the gun's stand-off plus, for a
        primary that left, the straight flight from the sensor's surface to where it left
        the world (the ray traced back into the box)."""
        standoff = GUN_STANDOFF_UM / self.gun_d[:, 2]
        pos = end[:, 0:3] / self.g4.um + [self.width / 2, self.height / 2, self.thickness / 2]
        u = end[:, 4:7]
        hi = np.array([self.width, self.height, self.thickness])
        back = np.zeros(len(end))
        for axis in range(3):
            c, v = pos[:, axis], u[:, axis]
            with np.errstate(divide="ignore", invalid="ignore"):
                t = np.where(c < 0, c / v, np.where(c > hi[axis], (c - hi[axis]) / v, 0.0))
            back = np.maximum(back, np.nan_to_num(t, nan=0.0, posinf=0.0, neginf=0.0))
        return standoff + back

    def _deposits(self, n: int, segment_um: float) -> dict:
        """Recorded steps -> per-primary totals and (subdivided) deposit points."""
        g4 = self.g4
        raw = np.asarray(self.steps, np.float64).reshape(-1, 7)
        ends = np.asarray(self.event_ends, np.int64) // 7
        counts = np.diff(np.concatenate([[0], ends]))
        event = np.repeat(np.arange(n), counts)
        shift = np.array([self.width / 2, self.height / 2, self.thickness / 2])
        pre = raw[:, 0:3] / g4.um + shift
        post = raw[:, 3:6] / g4.um + shift
        edep = raw[:, 6] / g4.keV
        mid = 0.5 * (pre + post)
        # steps in the vacuum around the sensor deposit ~1e-27 of the energy; their
        # midpoints lie outside the sensor (they start on its surface at most)
        inside = (
            (mid[:, 2] > 0)
            & (mid[:, 2] < self.thickness)
            & (mid[:, 0] >= 0)
            & (mid[:, 0] <= self.width)
            & (mid[:, 1] >= 0)
            & (mid[:, 1] <= self.height)
        )
        pre, post, edep, event = pre[inside], post[inside], edep[inside], event[inside]
        deposit = np.bincount(event, edep, minlength=n)

        chord = post - pre
        if segment_um > 0:
            length = np.sqrt(np.einsum("ij,ij->i", chord, chord))
            pieces = np.maximum(1, np.ceil(length / segment_um - 1e-9)).astype(np.int64)
        else:
            pieces = np.ones(len(edep), np.int64)
        first = np.cumsum(pieces) - pieces
        src = np.repeat(np.arange(len(edep)), pieces)
        k = np.arange(len(src)) - first[src]
        frac = (k + 0.5) / pieces[src]
        points = pre[src] + frac[:, None] * chord[src]
        energy = edep[src] / pieces[src]
        per_event = np.bincount(event[src], minlength=n)

        end = np.asarray(self.primary_end, np.float64)
        z_end = end[:, 2] / g4.um + self.thickness / 2
        return {
            "deposit_keV": deposit,
            "backscattered": z_end < 0,
            "transmitted": z_end > self.thickness,
            # the primary's path in vacuum (gun stand-off, flight to the world's edge) is
            # straight: subtract it to get the path in silicon
            "primary_path_um": end[:, 3] / g4.um - self._vacuum_path(end),
            "offsets": np.concatenate([[0], np.cumsum(per_event)]).astype(np.int64),
            "step_x_um": points[:, 0].astype(np.float32),
            "step_y_um": points[:, 1].astype(np.float32),
            "step_z_um": points[:, 2].astype(np.float32),
            "step_edep_keV": energy.astype(np.float32),
        }


def _make_detector(g4, app: Application):
    class Detector(g4.G4VUserDetectorConstruction):
        def Construct(self):
            nist = g4.G4NistManager.Instance()
            vacuum = nist.FindOrBuildMaterial("G4_Galactic")
            silicon = nist.FindOrBuildMaterial("G4_Si")
            um = g4.um
            hx, hy, hz = app.width / 2, app.height / 2, app.thickness / 2
            m = WORLD_MARGIN_UM
            self.world_solid = g4.G4Box("World", (hx + m) * um, (hy + m) * um, (hz + m) * um)
            self.world_lv = g4.G4LogicalVolume(self.world_solid, vacuum, "World")
            self.world_pv = g4.G4PVPlacement(
                None, g4.G4ThreeVector(), self.world_lv, "World", None, False, 0
            )
            self.sensor_solid = g4.G4Box("Sensor", hx * um, hy * um, hz * um)
            self.sensor_lv = g4.G4LogicalVolume(self.sensor_solid, silicon, "Sensor")
            max_step = app.settings.get("max_step_um")
            if max_step:
                self.limits = g4.G4UserLimits(float(max_step) * um)
                self.sensor_lv.SetUserLimits(self.limits)
            self.sensor_pv = g4.G4PVPlacement(
                None, g4.G4ThreeVector(), self.sensor_lv, "Sensor", self.world_lv, False, 0
            )
            return self.world_pv

    return Detector()


def _make_physics_list(g4, settings: dict):
    constructors = {
        "standard": g4.G4EmStandardPhysics,
        "option1": g4.G4EmStandardPhysics_option1,
        "option3": g4.G4EmStandardPhysics_option3,
        "wvi": g4.G4EmStandardPhysicsWVI,
    }
    physics = g4.G4VModularPhysicsList()
    physics.SetVerboseLevel(0)
    physics.RegisterPhysics(constructors[settings["physics"]]())
    if settings.get("max_step_um"):
        physics.RegisterPhysics(g4.G4StepLimiterPhysics())
    # parameters after the constructor (it resets them to its own defaults)
    params = g4.G4EmParameters.Instance()
    params.SetVerbose(0)
    params.SetWorkerVerbose(0)
    # atomic de-excitation reads G4EMLOW (the shell data): off, as in the standard list
    params.SetFluo(False)
    params.SetAuger(False)
    params.SetPixe(False)
    limit = settings.get("msc_step_limit")
    if limit:
        # G4MscStepLimitType is not bound in geant4_pybind: use the UI command
        g4.G4UImanager.GetUIpointer().ApplyCommand(f"/process/msc/StepLimit {MSC_COMMAND[limit]}")
    return physics


def _remove_data_dependent_processes(g4) -> None:
    table = g4.G4ParticleTable.GetParticleTable()
    for i in range(table.entries()):
        particle = table.GetParticle(i)
        manager = particle.GetProcessManager()
        if manager is None:
            continue
        name = particle.GetParticleName()
        for process in list(manager.GetProcessList()):
            pname = process.GetProcessName()
            if name in ("e-", "e+"):
                if pname == "eBrem":
                    manager.RemoveProcess(process)
            elif pname != "Transportation":
                manager.RemoveProcess(process)


def _make_actions(g4, app: Application):
    class Gun(g4.G4VUserPrimaryGeneratorAction):
        def __init__(self):
            super().__init__()
            self.gun = g4.G4ParticleGun(1)
            self.gun.SetParticleByName("e-")
            self.gun.SetParticleEnergy(app.energy_keV * g4.keV)

        def GeneratePrimaries(self, event):
            i = event.GetEventID()
            self.gun.SetParticlePosition(
                g4.G4ThreeVector(float(app.gun_x[i]), float(app.gun_y[i]), float(app.gun_z[i]))
            )
            d = app.gun_d[i]
            self.gun.SetParticleMomentumDirection(
                g4.G4ThreeVector(float(d[0]), float(d[1]), float(d[2]))
            )
            self.gun.GeneratePrimaryVertex(event)

    class Stepping(g4.G4UserSteppingAction):
        # called for every step of every particle: keep it to a few attribute reads
        def __init__(self):
            super().__init__()
            self.extend = app.steps.extend

        def UserSteppingAction(self, step):
            e = step.GetTotalEnergyDeposit()
            if e > 0.0:
                p = step.GetPreStepPoint().GetPosition()
                q = step.GetPostStepPoint().GetPosition()
                self.extend((p.x, p.y, p.z, q.x, q.y, q.z, e))

    class Tracking(g4.G4UserTrackingAction):
        def PostUserTrackingAction(self, track):
            if track.GetParentID() == 0:
                p = track.GetPosition()
                u = track.GetMomentumDirection()
                app.primary_end.append((p.x, p.y, p.z, track.GetTrackLength(), u.x, u.y, u.z))

    class Events(g4.G4UserEventAction):
        def EndOfEventAction(self, event):
            app.event_ends.append(len(app.steps))

    class Actions(g4.G4VUserActionInitialization):
        def Build(self):
            # keep references: Geant4 holds raw pointers to these
            self.kept = (Gun(), Stepping(), Tracking(), Events())
            for action in self.kept:
                self.SetUserAction(action)

    return Actions()

"""Stand-ins for the Geant4 worker body, speaking its protocol, for the crash tests of
``dedkit.sim.transport.workers._WorkerPool``. They run in spawned processes (this folder
is on ``sys.path`` under pytest, and spawned children inherit it).

``settings["mode"]`` picks the misbehaviour; batch ``settings["bad"]`` is the one hit.
"""

import os
import signal

import numpy as np


def _write(workdir, k, spec):
    path = os.path.join(workdir, f"batch-{k:06d}.npz")
    tmp = path + f".{os.getpid()}.tmp.npz"
    np.savez(tmp, k=k, value=spec["value"])
    os.replace(tmp, path)
    return path


def _log(log_path, text):
    with open(log_path, "a") as f:
        f.write(text + "\n")


def worker(conn, settings, workdir, log_path):
    mode, bad = settings["mode"], settings.get("bad", 1)
    if mode == "die-at-start":
        _log(log_path, "G4Exception fake: cannot build the physics")
        os._exit(1)
    conn.send(("ready", {"geant4_version": "fake"}))
    while True:
        message = conn.recv()
        if message[0] == "stop":
            if mode == "segv-at-exit":
                os.kill(os.getpid(), signal.SIGSEGV)
            os._exit(0)
        _, k, spec = message
        if k == bad:
            if mode == "error":
                conn.send(("error", k, "ValueError: fake failure"))
                os._exit(1)
            if mode == "die-before-done":
                _write(workdir, k, spec)
                os.kill(os.getpid(), signal.SIGKILL)
            marker = os.path.join(workdir, f"died-{k}")
            if mode == "die-always" or (mode == "die-once" and not os.path.exists(marker)):
                open(marker, "w").close()
                _log(log_path, f"G4Exception fake fatal in batch {k}")
                os.kill(os.getpid(), signal.SIGKILL)
        conn.send(("done", k, _write(workdir, k, spec)))

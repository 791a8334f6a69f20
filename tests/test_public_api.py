"""Issue 14 item 2: the subpackages export their public names, and the lazy ones stay lazy."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGES = ["dedkit.camera", "dedkit.frames", "dedkit.hpd", "dedkit.io", "dedkit.jobs",
            "dedkit.metrics", "dedkit.records", "dedkit.sim"]  # fmt: skip
LAZY = ["dedkit.hpd", "dedkit.io", "dedkit.jobs", "dedkit.sim"]


@pytest.mark.parametrize("name", PACKAGES)
def test_every_exported_name_resolves_issue_14_item_2(name):
    package = importlib.import_module(name)
    assert package.__all__, name
    for public in package.__all__:
        value = getattr(package, public)
        assert value is not None, f"{name}.{public}"
        # a name is exported from the module that defines it (or a records type)
        module = getattr(value, "__module__", None)
        if module is not None and not isinstance(value, type(sys)):
            assert module.startswith("dedkit."), f"{name}.{public} comes from {module}"
    assert sorted(set(package.__all__)) == sorted(package.__all__), "exported twice"


@pytest.mark.parametrize("name", LAZY)
def test_lazy_package_imports_none_of_its_modules_issue_14_item_2(name):
    """``import dedkit.io`` costs nothing: the modules (and h5py, tifffile, Geant4...)
    are imported when a name is first used."""
    code = (
        f"import sys, {name} as p\n"
        f"print(sorted(m for m in sys.modules if m.startswith('{name}.')))\n"
        "print(sorted(set(dir(p)) & set(p.__all__)) == sorted(p.__all__))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split("\n")  # fmt: skip
    assert out[0] == "[]", out[0]
    assert out[1] == "True"


def test_unknown_name_is_an_attribute_error_issue_14_item_2():
    import dedkit.io

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        dedkit.io.nope  # noqa: B018


def test_a_name_that_is_also_a_module_is_refused_issue_14_item_2():
    """The import system would replace such a name by the module once it is imported."""
    from dedkit._lazy import lazy_exports

    with pytest.raises(ValueError, match="both a module and a name"):
        lazy_exports("dedkit.sim", {"validate": ["validate"]})
    with pytest.raises(ValueError, match="exported by both"):
        lazy_exports("dedkit.io", {"mrc": ["read_header"], "dm": ["read_header"]})


def test_frames_rotflip_is_the_function_issue_14_item_2():
    """dedkit.frames exports rotflip, the function, although a module has its name."""
    import numpy as np

    import dedkit.frames.gain  # imports dedkit.frames.rotflip first  # noqa: F401
    from dedkit.frames import rotflip

    assert callable(rotflip)
    assert rotflip(np.arange(4).reshape(2, 2), 0).shape == (2, 2)


# ----- references in the docs and docstrings ---------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
#: ``dedkit.io.open_stack``, ``dedkit.sim.transport.settings``: a dotted name, not a path
#: (``dedkit/io``) nor part of a longer word
_DOTTED = re.compile(r"(?<![\w./-])dedkit(?:\.[A-Za-z_]\w*)+")


def _resolves(name: str) -> bool | None:
    """Whether ``name`` is a module or an attribute of one; None when an optional
    dependency (torch, geant4) keeps its module from importing."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError as error:
            if (error.name or "").startswith("dedkit"):
                continue
            return None
        for attribute in parts[i:]:
            if not hasattr(obj, attribute):
                return False
            obj = getattr(obj, attribute)
        return True
    return False


def test_every_dotted_name_in_the_docs_and_docstrings_resolves_issue_14():
    # moved and renamed modules (issue 14) leave no stale :mod:/:func: references behind
    files = [ROOT / "README.md", ROOT / "DEVELOPERS.md", *sorted((ROOT / "docs").glob("*.md"))]
    files += sorted((ROOT / "src" / "dedkit").rglob("*.py"))
    stale = []
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for match in _DOTTED.finditer(line):
                name = match.group(0)
                if name.endswith((".py", ".md", ".json", ".npz", ".h5")):
                    continue  # a file name such as dedkit.learn.models/moench200.json
                if _resolves(name) is False:
                    stale.append(f"{path.relative_to(ROOT)}:{number}: {name}")
    assert not stale, "names that do not exist:\n  " + "\n  ".join(stale)

"""Issue 14 item 2: every docstring Example under ``src/dedkit`` runs in CI.

pytest collects no doctests from ``src/`` by itself; this file finds them with
:class:`doctest.DocTestFinder` in every module :func:`pkgutil.walk_packages` lists, one
test per module (the test id is the module's name). Each example runs with ``ELLIPSIS``
and ``NORMALIZE_WHITESPACE`` in a fresh temporary working folder, so an example may write
files under relative names without leaving them behind. A module whose import fails for a
missing optional dependency (torch, ncempy, ...) is skipped, as
:func:`pytest.importorskip` does; any other import error fails its test.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import dedkit

#: modules not imported here: they run inside Geant4 worker processes
EXCLUDED = {"dedkit.sim._geant4_app"}
#: the optional dependencies a module may need (pyproject's extras and test tools)
OPTIONAL = {"torch", "ncempy", "matplotlib", "aare", "geant4_pybind", "hypothesis"}
#: at least this many examples must be found, so the collection cannot silently find none
MIN_EXAMPLES = 75
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _module_names() -> list[str]:
    names = [dedkit.__name__]
    for info in pkgutil.walk_packages(dedkit.__path__, prefix="dedkit."):
        if info.name not in EXCLUDED:
            names.append(info.name)
    return sorted(names)


MODULES = _module_names()


def _import(name: str):
    """The module, or a skip when it needs an optional dependency that is missing."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing in OPTIONAL:
            pytest.skip(f"{name} needs {missing}, which is not installed")
        raise


def _tests(module) -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    # objects a module imports from elsewhere are tested in their own module
    return [t for t in finder.find(module, module.__name__) if t.examples]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    """Issue 14 item 2: the module's docstring Examples give the output they show."""
    module = _import(name)
    tests = _tests(module)
    if not tests:
        pytest.skip("no examples")
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report: list[str] = []
    failed = attempted = 0
    for index, test in enumerate(sorted(tests, key=lambda t: t.name)):
        # each docstring in a fresh folder; monkeypatch restores the working folder
        folder = tmp_path / str(index)
        folder.mkdir()
        monkeypatch.chdir(folder)
        result = runner.run(test, out=report.append, clear_globs=True)
        failed += result.failed
        attempted += result.attempted
    assert not failed, f"{failed} of {attempted} examples failed:\n" + "".join(report)


def test_examples_are_found():
    """Issue 14 item 2: the search above finds the examples (at least MIN_EXAMPLES)."""
    count = 0
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] in OPTIONAL:
                continue
            raise
        count += sum(len(t.examples) for t in _tests(module))
    assert count >= MIN_EXAMPLES, f"only {count} docstring examples found under src/dedkit"

"""Issue 14 item 2: every docstring Example under ``src/dedkit`` runs in CI.

pytest collects no doctests from ``src/`` by itself; this file finds them with
:class:`doctest.DocTestFinder` in every module :func:`pkgutil.walk_packages` lists, one
test per module that shows one (the test id is the module's name). Each docstring's
examples run with ``ELLIPSIS`` and ``NORMALIZE_WHITESPACE`` in a fresh temporary working
folder, so an example may write files under relative names without leaving them behind.

Optional dependencies (torch, ncempy, ...) may be missing: a module whose import fails for
one is skipped, as :func:`pytest.importorskip` does, and so is a docstring whose example
fails to import one (the job examples of ``dedkit.jobs.learn`` train with torch); any
other import error fails the test.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import dedkit

#: modules not imported here: they run inside Geant4 worker processes
EXCLUDED = {"dedkit.sim._geant4_app"}
#: the optional dependencies a module or an example may need (pyproject's extras and the
#: test tools)
OPTIONAL = {"torch", "ncempy", "matplotlib", "aare", "geant4_pybind", "hypothesis", "ase", "abtem"}
#: at least this many examples must be found, so the collection cannot silently find none
MIN_EXAMPLES = 130
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _source(name: str) -> str:
    """The text of module ``name`` (read, not imported)."""
    root = Path(dedkit.__file__).parent
    parts = name.split(".")[1:]
    path = root.joinpath(*parts)
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    return path.read_text(encoding="utf-8")


def _module_names() -> list[str]:
    """The modules whose source holds an example (``>>>``): one test each."""
    names = [dedkit.__name__]
    for info in pkgutil.walk_packages(dedkit.__path__, prefix="dedkit."):
        if info.name not in EXCLUDED:
            names.append(info.name)
    return sorted(n for n in names if ">>>" in _source(n))


MODULES = _module_names()


def _missing_optional(exc: BaseException) -> str | None:
    """The optional dependency whose absence ``exc`` reports, or None."""
    if isinstance(exc, ModuleNotFoundError):
        top = (exc.name or "").split(".")[0]
        if top in OPTIONAL:
            return top
    return None


def _import(name: str):
    """The module, or a skip when it needs an optional dependency that is missing."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        missing = _missing_optional(exc)
        if missing:
            pytest.skip(f"{name} needs {missing}, which is not installed")
        raise


def _tests(module) -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    # DocTestFinder leaves out what a module imports from elsewhere: each object's
    # examples are run once, in the module that defines it
    return sorted((t for t in finder.find(module, module.__name__) if t.examples),
                  key=lambda t: t.name)  # fmt: skip


class _Runner(doctest.DocTestRunner):
    """A runner that notes an example failing for a missing optional dependency."""

    missing: str | None = None

    def report_unexpected_exception(self, out, test, example, exc_info):
        self.missing = self.missing or _missing_optional(exc_info[1])
        super().report_unexpected_exception(out, test, example, exc_info)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    """Issue 14 item 2: the module's docstring Examples give the output they show."""
    module = _import(name)
    tests = _tests(module)
    assert tests, f"{name} shows '>>>' but doctest finds no example in it"
    report: list[str] = []
    skipped: list[str] = []
    failed = attempted = 0
    for index, test in enumerate(tests):
        # each docstring in a fresh folder; monkeypatch restores the working folder
        folder = tmp_path / str(index)
        folder.mkdir()
        monkeypatch.chdir(folder)
        runner = _Runner(optionflags=FLAGS)
        output: list[str] = []
        result = runner.run(test, out=output.append, clear_globs=True)
        if runner.missing:
            skipped.append(f"{test.name} needs {runner.missing}")
            continue
        report += output
        failed += result.failed
        attempted += result.attempted
    assert not failed, f"{failed} of {attempted} examples failed:\n" + "".join(report)
    if skipped:
        pytest.skip(f"the other examples pass; not installed: {'; '.join(skipped)}")


def test_examples_are_found():
    """Issue 14 item 2: the search above finds the examples (at least MIN_EXAMPLES)."""
    count = 0
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if _missing_optional(exc):
                continue
            raise
        count += sum(len(t.examples) for t in _tests(module))
    assert count >= MIN_EXAMPLES, f"only {count} docstring examples found under src/dedkit"

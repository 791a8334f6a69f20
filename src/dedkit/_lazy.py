"""Public names of a subpackage, imported from their modules when first used.

A subpackage's ``__init__`` lists its public names by module; ``import dedkit.io`` then
costs nothing, and ``dedkit.io.open_stack`` imports :mod:`dedkit.io.stack` on first use.
This keeps the command line quick to start (it imports only what a command needs) and
keeps the import-direction rule checkable module by module (importing a package pulls in
none of its modules), as scikit-image's ``lazy_loader`` does for its subpackages.
"""

from __future__ import annotations

import importlib

__all__ = ["lazy_exports"]


def lazy_exports(package: str, names_by_module: dict[str, list[str]]):
    """``__getattr__``, ``__dir__`` and ``__all__`` for a package's ``__init__``.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    names_by_module : dict
        For each module, the public names it exports: a module of the package by its
        relative name (``"stack"``), or a module elsewhere in dedkit by its full name
        (``"dedkit.records.tables"``: a record type a package shares with others).

    Returns
    -------
    tuple
        ``(__getattr__, __dir__, __all__)`` to assign in the package's ``__init__``.

    Examples
    --------
    >>> getattr_, dir_, all_ = lazy_exports("dedkit.metrics", {"frc": ["frc", "mean_frc"]})
    Traceback (most recent call last):
    ...
    ValueError: dedkit.metrics: frc is both a module and a name
    >>> getattr_, dir_, all_ = lazy_exports("dedkit.metrics", {"frc": ["mean_frc"]})
    >>> all_
    ['mean_frc']
    >>> getattr_("mean_frc").__module__
    'dedkit.metrics.frc'
    """
    home = {}
    for module, names in names_by_module.items():
        for name in names:
            # a submodule of the same name would replace the name on the package once
            # imported (the import system sets it), so the two must differ
            if name in names_by_module:
                raise ValueError(f"{package}: {name} is both a module and a name")
            if name in home:
                raise ValueError(f"{package}: {name} is exported by both {home[name]} and {module}")
            home[name] = module
    public = sorted(home)

    def __getattr__(name: str):
        try:
            module = home[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        full = module if module.startswith("dedkit.") else f"{package}.{module}"
        return getattr(importlib.import_module(full), name)

    def __dir__():
        return list(public)

    return __getattr__, __dir__, public

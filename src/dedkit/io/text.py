"""Small text files (scan schedules and the like), read with one-line errors."""

from __future__ import annotations

from pathlib import Path

from dedkit.errors import DedkitError
from dedkit.io.inputs import check_input_file

__all__ = ["read_text_file"]


def read_text_file(path, what: str) -> str:
    """The UTF-8 text of a file; ``what`` names it in the error ("scan CSV")."""
    check_input_file(path, what)
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DedkitError(
            f"cannot read the {what}: {error.__class__.__name__}", path=path
        ) from None

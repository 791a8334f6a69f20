"""The one exception type that carries a user-facing message.

Anything that is wrong with the user's input (a file, a value, a combination of options)
raises :class:`DedkitError` with a message that makes sense on one line without a
traceback; the command line prints it and exits with status 2.
"""

import contextlib


class DedkitError(Exception):
    """Bad input: the message is shown to the user as one line, exit status 2."""

    def __init__(self, message: str, *, path=None, line: int | None = None):
        self.path = None if path is None else str(path)
        self.line = line
        where = ""
        if self.path is not None:
            where = self.path + (f":{line}" if line is not None else "") + ": "
        super().__init__(where + message)


def one_line(error) -> str:
    """An exception's (or any) message on a single line (library messages may span several)."""
    text = " ".join(str(error).split())
    return text or type(error).__name__


@contextlib.contextmanager
def about(path):
    """Name ``path`` in a :class:`DedkitError` raised without a file by the block (a
    check on values read from that file, e.g. its titles).

    Examples
    --------
    >>> try:
    ...     with about("frames.mrc"):
    ...         raise DedkitError("cannot find an r/f entry in the frame titles")
    ... except DedkitError as e:
    ...     print(e)
    frames.mrc: cannot find an r/f entry in the frame titles
    """
    try:
        yield
    except DedkitError as error:
        if error.path is not None:
            raise
        raise DedkitError(str(error), path=path, line=error.line) from None

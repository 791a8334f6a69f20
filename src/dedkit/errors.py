"""The one exception type that carries a user-facing message.

Anything that is wrong with the user's input (a file, a value, a combination of options)
raises :class:`DedkitError` with a message that makes sense on one line without a
traceback; the command line prints it and exits with status 2.
"""


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

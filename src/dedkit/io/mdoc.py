"""SerialEM metadata autodoc (.mdoc) files, read and written without loss.

An mdoc is an IMOD autodoc: ``key = value`` lines, first global ones, then sections
that each start with a header ``[Kind = value]``: ``[ZValue = n]`` for an image of an
image stack, ``[FrameSet = n]`` for a frame stack, ``[T = text]`` for a title line of
an image stack (a frame-stack mdoc holds its titles as global keys ``T``, ``T1``, ...).

The reading rules are those of IMOD's ``AdocRead`` (libcfshr/autodoc.c), which SerialEM
uses for its own files:

- blanks and tabs around keys, values and whole lines do not count;
- a blank line, or one whose first non-blank character is ``#``, is a comment; there are
  no comments at the end of a line, so a value may hold any text;
- a line starting with ``[`` is a section header: ``Kind = value`` up to the first
  ``]``, both parts non-empty; anything after the ``]`` is ignored;
- any other line holds ``key = value`` split at its first ``=``; the key must not be
  empty (it may contain blanks), the value may be;
- a line without ``=`` continues the value of the latest key of the same section (also
  across comment lines), joined to it by one blank, provided that value is not empty;
- a key given twice in one section takes its later value.

Stricter than ``AdocRead``: a line starting with ``[`` but without ``]`` is an error here
(IMOD would take it for a key or a continuation), and the global keys
``KeyValueDelimiter`` and ``CommentCharacter``, which change the syntax, are refused
unless they keep ``=`` and ``#``.  Nothing SerialEM writes is affected.

Every line keeps its exact text and line ending, so ``format_mdoc(parse_mdoc(text))``
gives back ``text``; only entries changed through this module are written anew, as
``key = value`` with the file's own line ending.  Files are decoded as UTF-8 with
undecodable bytes carried through unchanged (``surrogateescape``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dedkit.errors import DedkitError
from dedkit.io.atomic import check_output_path, write_atomic
from dedkit.io.inputs import check_input_file

_BLANKS = " \t"
# A line's trailing white space, '\r' included, is no part of it (IMOD strips it).
_TRAILING = " \t\r"
_ENCODING = "utf-8"
_ENCODING_ERRORS = "surrogateescape"


@dataclass
class MdocEntry:
    """One ``key = value`` pair, with any continuation lines folded into the value.

    Attributes
    ----------
    key : str
        The key, without surrounding blanks.
    value : str
        The value, without surrounding blanks; continuation lines are joined with one
        blank.  Empty for a key written without a value.
    line : int or None
        1-based line of the key in the text it was read from; None if made here.
    """

    key: str
    value: str
    line: int | None = None
    # The lines as read (with their endings) and the key and value they gave; they are
    # written back unchanged as long as key and value still match.
    _source_lines: list[str] = field(default_factory=list, repr=False, compare=False)
    _source_pair: tuple[str, str] | None = field(default=None, repr=False, compare=False)

    def _text_lines(self, newline: str) -> list[str]:
        if self._source_pair == (self.key, self.value):
            return self._source_lines
        return [f"{self.key} = {self.value}{newline}"]


@dataclass
class MdocComment:
    """A comment line (first non-blank character ``#``) or a blank line.

    Attributes
    ----------
    text : str
        The whole line without its line ending.
    line : int or None
        1-based line in the text it was read from; None if made here.
    """

    text: str
    line: int | None = None
    _ending: str | None = field(default=None, repr=False, compare=False)

    def _text_lines(self, newline: str) -> list[str]:
        return [self.text + (newline if self._ending is None else self._ending)]


class MdocSection(Mapping[str, str]):
    """The global part of an mdoc or one ``[kind = value]`` section.

    As a mapping it gives the value of each key (the later one for a key given twice),
    keys in the order they first appear.

    Parameters
    ----------
    kind : str or None
        What precedes ``=`` in the header (``ZValue``, ``FrameSet``, ``T``...); None for
        the global part.
    value : str or None
        What follows ``=`` in the header; None for the global part.
    entries : list of MdocEntry and MdocComment, optional
        The section's lines in file order.
    line : int or None
        1-based line of the header in the text it was read from.
    """

    def __init__(
        self,
        kind: str | None,
        value: str | None,
        entries: list[MdocEntry | MdocComment] | None = None,
        line: int | None = None,
    ):
        if (kind is None) != (value is None):
            raise ValueError("a section needs both kind and value, or neither (global part)")
        if kind is not None:
            _check_section_header(kind, value)
        self.kind = kind
        self.value = value
        self.entries: list[MdocEntry | MdocComment] = [] if entries is None else entries
        self.line = line
        self._source_header: tuple[str, tuple[str, str]] | None = None

    def __repr__(self) -> str:
        return f"MdocSection({self.kind!r}, {self.value!r}, {len(self.entries)} entries)"

    def __eq__(self, other) -> bool:
        # Mapping's equality alone would make [ZValue = 0] equal to [ZValue = 1].
        if isinstance(other, MdocSection):
            return (self.kind, self.value, dict(self)) == (other.kind, other.value, dict(other))
        return super().__eq__(other)

    __hash__ = None

    def __getitem__(self, key: str) -> str:
        entry = self.entry(key)
        if entry is None:
            raise KeyError(key)
        return entry.value

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(e.key for e in self.entries if isinstance(e, MdocEntry)))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def entry(self, key: str) -> MdocEntry | None:
        """The entry that gives ``key`` its value (the last one with that key), or None."""
        for item in reversed(self.entries):
            if isinstance(item, MdocEntry) and item.key == key:
                return item
        return None

    def set(self, key: str, value) -> MdocEntry:
        """Give ``key`` a value, replacing the current one or adding the key.

        A new key goes after the section's last entry, before any comment or blank lines
        that end the section.

        Parameters
        ----------
        key : str
            A key: not empty, no ``=``, no line break, not starting with ``[`` or ``#``.
        value : str, int, float or an iterable of them
            Written as text: floats in the shortest form that reads back exactly,
            iterables (lists, tuples, numpy arrays) joined by blanks.  Surrounding
            blanks are dropped, since the file cannot hold them.

        Returns
        -------
        MdocEntry
            The entry holding the value.
        """
        _check_key(key)
        text = _value_text(value)
        entry = self.entry(key)
        if entry is not None:
            entry.value = text
            return entry
        entry = MdocEntry(key, text)
        self.entries.insert(self._end_of_entries(), entry)
        return entry

    def _end_of_entries(self) -> int:
        for index in range(len(self.entries), 0, -1):
            if isinstance(self.entries[index - 1], MdocEntry):
                return index
        return 0

    def _text_lines(self, newline: str) -> list[str]:
        lines = []
        if self.kind is not None:
            source = self._source_header
            if source is not None and source[1] == (self.kind, self.value):
                lines.append(source[0])
            else:
                lines.append(f"[{self.kind} = {self.value}]{newline}")
        for item in self.entries:
            lines.extend(item._text_lines(newline))
        return lines


SectionChoice = None | int | MdocSection | tuple[str, object]


class Mdoc:
    """A whole mdoc file: the global part and the sections, in file order.

    Parameters
    ----------
    global_section : MdocSection, optional
        The global part (kind and value None); empty by default.
    sections : list of MdocSection, optional
        The sections in file order.
    newline : str
        Line ending for lines written anew: ``"\\n"`` or ``"\\r\\n"``.
    path : str, optional
        The file it came from, named in error messages.

    Notes
    -----
    The methods that take ``section`` accept None for the global part, an index into
    ``sections``, an :class:`MdocSection`, or a ``(kind, value)`` pair such as
    ``("ZValue", 3)`` naming the first section with that header.
    """

    def __init__(
        self,
        global_section: MdocSection | None = None,
        sections: list[MdocSection] | None = None,
        newline: str = "\n",
        path=None,
    ):
        if newline not in ("\n", "\r\n"):
            raise ValueError(f"line ending must be '\\n' or '\\r\\n', not {newline!r}")
        self.globals = MdocSection(None, None) if global_section is None else global_section
        self.sections: list[MdocSection] = [] if sections is None else sections
        self.newline = newline
        self.path = None if path is None else str(path)

    def __repr__(self) -> str:
        where = f", path={self.path!r}" if self.path else ""
        return f"Mdoc({len(self.globals)} global keys, {len(self.sections)} sections{where})"

    def sections_of(self, kind: str) -> list[MdocSection]:
        """All sections whose header has this kind (``"ZValue"``, ``"FrameSet"``...)."""
        return [s for s in self.sections if s.kind == kind]

    def find_section(self, kind: str, value) -> MdocSection | None:
        """The first section with header ``[kind = value]``, or None."""
        wanted = str(value)
        return next((s for s in self.sections if s.kind == kind and s.value == wanted), None)

    def section(self, section: SectionChoice = None) -> MdocSection:
        """The section that ``section`` names (see the class notes).

        Raises
        ------
        DedkitError
            If a ``(kind, value)`` pair names no section.
        IndexError
            For an index outside ``sections``.
        """
        if section is None:
            return self.globals
        if isinstance(section, MdocSection):
            return section
        if isinstance(section, tuple):
            kind, value = section
            found = self.find_section(kind, value)
            if found is None:
                raise DedkitError(f"no section [{kind} = {value}] in the mdoc", path=self.path)
            return found
        return self.sections[section]

    def get(self, key: str, section: SectionChoice = None, default: str | None = None):
        """The value of ``key`` as text, or ``default`` if the section lacks it."""
        entry = self.section(section).entry(key)
        return default if entry is None else entry.value

    def get_float(self, key: str, section: SectionChoice = None, default=None):
        """The value of ``key`` as one float, or ``default`` if the section lacks it.

        Raises
        ------
        DedkitError
            If the value is not exactly one number; the message names file and line.
        """
        numbers = self._numbers(key, section, float, "a number")
        if numbers is None:
            return default
        return self._single(key, section, numbers)

    def get_int(self, key: str, section: SectionChoice = None, default=None):
        """The value of ``key`` as one integer, or ``default`` if the section lacks it.

        Raises
        ------
        DedkitError
            If the value is not exactly one integer; the message names file and line.
        """
        numbers = self._numbers(key, section, int, "an integer")
        if numbers is None:
            return default
        return self._single(key, section, numbers)

    def get_floats(self, key: str, section: SectionChoice = None, default=None):
        """The value of ``key`` as a list of floats (separated by blanks or commas).

        Returns ``default`` if the section lacks the key.

        Raises
        ------
        DedkitError
            If an item is not a number; the message names file and line.
        """
        numbers = self._numbers(key, section, float, "a number")
        return default if numbers is None else numbers

    def get_ints(self, key: str, section: SectionChoice = None, default=None):
        """The value of ``key`` as a list of integers (separated by blanks or commas).

        Returns ``default`` if the section lacks the key.

        Raises
        ------
        DedkitError
            If an item is not an integer; the message names file and line.
        """
        numbers = self._numbers(key, section, int, "an integer")
        return default if numbers is None else numbers

    def set(self, key: str, value, section: SectionChoice = None) -> MdocEntry:
        """Give ``key`` a value in a section; see :meth:`MdocSection.set`."""
        return self.section(section).set(key, value)

    def add_section(self, kind: str, value) -> MdocSection:
        """Append a section ``[kind = value]`` after the last one.

        A blank line goes before the header unless one is there already, as IMOD's
        autodoc writer does.
        """
        new = MdocSection(kind, str(value))
        previous = self.sections[-1] if self.sections else self.globals
        ends_blank = previous.entries and _is_blank(previous.entries[-1])
        if (previous.kind is not None or previous.entries) and not ends_blank:
            previous.entries.append(MdocComment(""))
        self.sections.append(new)
        return new

    def _numbers(self, key, section, convert, what):
        entry = self.section(section).entry(key)
        if entry is None:
            return None
        items = entry.value.replace(",", " ").split()
        if not items:
            raise self._value_error(entry, "has no value")
        # Python would also read 1_000; C's conversions, which wrote the file, would not.
        if any("_" in item for item in items):
            raise self._value_error(entry, f"is not {what}")
        try:
            return [convert(item) for item in items]
        except ValueError:
            raise self._value_error(entry, f"is not {what}") from None

    def _single(self, key, section, numbers):
        if len(numbers) != 1:
            entry = self.section(section).entry(key)
            raise self._value_error(entry, "holds more than one value")
        return numbers[0]

    def _value_error(self, entry: MdocEntry, problem: str) -> DedkitError:
        return _error(f"{entry.key} = {entry.value!r} {problem}", self.path, entry.line)


def _is_blank(item) -> bool:
    return isinstance(item, MdocComment) and not item.text.strip(_BLANKS)


def _error(message: str, path, line: int | None) -> DedkitError:
    # Without a path DedkitError would drop the line number from the message.
    if path is None and line is not None:
        return DedkitError(f"line {line}: {message}", line=line)
    return DedkitError(message, path=path, line=line)


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not key.strip(_BLANKS) or key != key.strip(_BLANKS):
        raise ValueError(f"mdoc key {key!r} is empty or has surrounding blanks")
    if "=" in key or "\n" in key or "\r" in key or key[0] in "[#":
        raise ValueError(f"mdoc key {key!r} has '=' or a line break or starts with '[' or '#'")


def _check_section_header(kind: str, value: str) -> None:
    for part in (kind, value):
        if not isinstance(part, str) or not part.strip(_BLANKS) or part != part.strip(_BLANKS):
            raise ValueError(f"section header part {part!r} is empty or has surrounding blanks")
        if "]" in part or "\n" in part or "\r" in part:
            raise ValueError(f"section header part {part!r} has ']' or a line break")
    if "=" in kind:
        raise ValueError(f"section kind {kind!r} has '='")


def _value_text(value) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, Iterable) and not isinstance(value, bytes | bytearray):
        text = " ".join(_value_text(v) for v in value)
    else:
        text = str(value)
    if "\n" in text or "\r" in text:
        raise ValueError(f"mdoc value {text!r} has a line break")
    return text.strip(_BLANKS)


def parse_mdoc(text: str, path=None) -> Mdoc:
    """Read an mdoc from its text.

    Parameters
    ----------
    text : str
        The file's contents.
    path : path-like, optional
        The file it came from, named in error messages.

    Returns
    -------
    Mdoc

    Raises
    ------
    DedkitError
        For a line the autodoc rules do not allow; the message names file and 1-based
        line.
    """
    lines = _split_lines(text)
    mdoc = Mdoc(newline="\r\n" if lines and lines[0][1] == "\r\n" else "\n", path=path)
    current = mdoc.globals
    latest: MdocEntry | None = None
    for number, (body, ending) in enumerate(lines, start=1):
        raw = body + ending
        content = body.strip(_BLANKS).rstrip(_TRAILING)
        if not content or content.startswith("#"):
            current.entries.append(MdocComment(body, number, ending))
        elif content.startswith("["):
            current = _parse_header(content, raw, number, path)
            mdoc.sections.append(current)
            latest = None
        elif "=" not in content:
            if latest is None or not latest.value:
                raise _error(
                    "line has no '=' and does not continue a value (a key = value line "
                    "with a value must come before it in the same section)",
                    path,
                    number,
                )
            _continue_value(current, latest, content, raw)
        else:
            latest = _parse_entry(content, raw, number, path)
            if not mdoc.sections:
                _check_syntax_key(latest, path)
            current.entries.append(latest)
    return mdoc


def _split_lines(text: str) -> list[tuple[str, str]]:
    """Lines as (text, ending) with ending "\\r\\n", "\\n", or "" for a last line without."""
    pieces = text.split("\n")
    lines = [
        (piece[:-1], "\r\n") if piece.endswith("\r") else (piece, "\n") for piece in pieces[:-1]
    ]
    # What follows the final newline is a line only if it is not empty.
    if pieces[-1]:
        lines.append((pieces[-1], ""))
    return lines


def _parse_header(content: str, raw: str, number: int, path) -> MdocSection:
    close = content.find("]")
    if close < 0:
        raise _error("section header has no closing ']'", path, number)
    inside = content[1:close]
    if "=" not in inside:
        raise _error("section header has no '=' (it should read [Kind = value])", path, number)
    kind, _, value = inside.partition("=")
    kind, value = kind.strip(_BLANKS), value.strip(_BLANKS)
    if not kind:
        raise _error("section header has nothing before '='", path, number)
    if not value:
        raise _error("section header has no value after '='", path, number)
    try:
        section = MdocSection(kind, value, line=number)
    # a lone carriage return inside the brackets (found by fuzzing) breaks the header rules
    except ValueError as error:
        raise _error(str(error), path, number) from None
    section._source_header = (raw, (kind, value))
    return section


def _parse_entry(content: str, raw: str, number: int, path) -> MdocEntry:
    key, _, value = content.partition("=")
    key, value = key.rstrip(_BLANKS), value.lstrip(_BLANKS)
    if not key:
        raise _error("line has nothing before '='", path, number)
    return MdocEntry(key, value, number, [raw], (key, value))


def _continue_value(section: MdocSection, entry: MdocEntry, content: str, raw: str) -> None:
    # Comment lines between the key and its continuation become part of the entry's
    # text, so that the lines keep their order when written back.
    position = section.entries.index(entry)
    between = section.entries[position + 1 :]
    del section.entries[position + 1 :]
    for comment in between:
        entry._source_lines.extend(comment._text_lines(""))
    entry._source_lines.append(raw)
    entry.value = f"{entry.value} {content}"
    entry._source_pair = (entry.key, entry.value)


def _check_syntax_key(entry: MdocEntry, path) -> None:
    # IMOD takes the whole value as the new delimiter but only the first character of
    # the value as the new comment character.
    changed = (entry.key == "KeyValueDelimiter" and entry.value != "=") or (
        entry.key == "CommentCharacter" and not entry.value.startswith("#")
    )
    if changed:
        raise _error(
            f"{entry.key} = {entry.value} changes the autodoc syntax, which is not supported",
            path,
            entry.line,
        )


def format_mdoc(mdoc: Mdoc) -> str:
    """The text of ``mdoc``: lines as read, entries changed or added written anew.

    Parameters
    ----------
    mdoc : Mdoc

    Returns
    -------
    str
        Equal to the text it was parsed from if nothing was changed.
    """
    lines = mdoc.globals._text_lines(mdoc.newline)
    for section in mdoc.sections:
        lines.extend(section._text_lines(mdoc.newline))
    # Only the file's last line may lack a line ending; one that has stopped being last
    # (something was added after it) gets the file's own.
    for index in range(len(lines) - 1):
        if not lines[index].endswith("\n"):
            lines[index] += mdoc.newline
    return "".join(lines)


def read_mdoc(path) -> Mdoc:
    """Read an mdoc file.

    Raises
    ------
    DedkitError
        If the file cannot be read or breaks the autodoc rules.
    """
    path = Path(path)
    if path.exists():
        check_input_file(path, "mdoc file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DedkitError(f"cannot read mdoc file: {exc.strerror}", path=path) from exc
    return parse_mdoc(data.decode(_ENCODING, _ENCODING_ERRORS), path=path)


def write_mdoc(mdoc: Mdoc, path, force: bool = False) -> None:
    """Write an mdoc file whole or not at all.

    Parameters
    ----------
    mdoc : Mdoc
    path : path-like
        Where to write; may be the file ``mdoc`` was read from (with ``force``).
    force : bool
        Replace an existing file.
    """
    output = check_output_path(path, force=force)
    data = format_mdoc(mdoc).encode(_ENCODING, _ENCODING_ERRORS)
    write_atomic(output, data)

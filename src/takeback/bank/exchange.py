"""Hash-list exchange formats: how hash banks travel between TakeBack and its partners.

Three formats, named as on the command line (``takeback bank import FILE
--format NAME``, ``takeback bank export --format NAME``):

``pdq``
    One PDQ hash per line, 64 hex digits, the form StopNCII, HMA and
    python-threatexchange exchange. Also reads python-threatexchange's
    local-file lines (``pdq <hex>``, ``photo_md5 <hex>``).
``te-csv``
    The CSV that ``threatexchange dataset -P --csv`` writes (header
    ``signal_type,signal_str,collab,category,tags``), optionally followed by
    TakeBack's own columns so that nothing is lost on a round trip.
``jsonl``
    TakeBack JSON lines: a header object, then one :class:`BankEntry` per line.

Every reader parses the whole file before returning, streams it (memory grows
only with the entries kept), caps lines at :data:`MAX_LINE_BYTES`, and reports
every problem as an :class:`~takeback.errors.ImportFormatError` naming the file
and the line. ``docs/formats.md`` describes the formats for partners.

Examples
--------
>>> import io
>>> from takeback.bank.model import BankEntry
>>> from takeback.fingerprint.types import PdqHash
>>> entry = BankEntry(label="beach.jpg", pdq=PdqHash.from_hex("f8" * 32),
...                   added_at="2026-11-22T03:30:00Z")
>>> out = io.StringIO()
>>> write_entries([entry], out, fmt="pdq")
1
>>> out.getvalue()
'f8f8f8f8f8f8f8f8f8f8f8f8f8f8f8f8f8f8f8f8f8f8f8f8f8f8f8f8f8f8f8f8\\n'
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, NoReturn, TextIO

from ..errors import FileAccessError, ImportFormatError, InputError
from ..fingerprint.types import PdqHash
from .model import BankEntry, utc_now

__all__ = [
    "FORMATS",
    "JSONL_FORMAT",
    "JSONL_VERSION",
    "MAX_LINE_BYTES",
    "SKIPPED_SIGNAL_TYPES",
    "TAKEBACK_CSV_COLUMNS",
    "TE_CSV_COLUMNS",
    "ImportReport",
    "detect_format",
    "read_entries",
    "write_entries",
]

#: The format names accepted by ``--format``.
FORMATS: Final[tuple[str, ...]] = ("pdq", "te-csv", "jsonl")

#: The longest line (in bytes, without its newline) a reader accepts.
MAX_LINE_BYTES: Final = 1 << 20

#: The ``format`` value of the JSON-lines header object.
JSONL_FORMAT: Final = "takeback-bank"
#: The JSON-lines format version this module writes and the newest it reads.
JSONL_VERSION: Final = 1

#: The columns ``threatexchange dataset -P --csv`` writes, in its order.
TE_CSV_COLUMNS: Final = ("signal_type", "signal_str", "collab", "category", "tags")
#: TakeBack's extra columns, written after :data:`TE_CSV_COLUMNS`.
TAKEBACK_CSV_COLUMNS: Final = (
    "label",
    "sha256",
    "md5",
    "quality",
    "width",
    "height",
    "added_at",
    "source",
)

#: python-threatexchange signal types that TakeBack recognises but does not
#: import (it matches still images by PDQ and file digests): lines of these
#: types are skipped and counted in :attr:`ImportReport.skipped`.
SKIPPED_SIGNAL_TYPES: Final = frozenset(
    {
        "video_md5",
        "video_sha256",
        "vpdq",
        "pdq_ocr",
        "raw_text",
        "text_tlsh",
        "tlsh",
        "trend_query",
        "url",
        "url_md5",
    }
)

_EXTENSIONS: Final = {
    ".csv": "te-csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".txt": "pdq",
    ".pdq": "pdq",
}
_SNIFF_BYTES: Final = 1 << 16
_CHUNK: Final = 1 << 20
_BOM: Final = b"\xef\xbb\xbf"
_CANONICAL_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
_MAX_SIDE: Final = 2**31 - 1
_SKIP_HINT: Final = "; fix the line or pass --skip-bad"


@dataclass(frozen=True)
class ImportReport:
    """What :func:`read_entries` found in a file.

    Attributes
    ----------
    entries : list of BankEntry
        The good entries, in file order, with ``id`` and ``seq`` unset.
    errors : list of ImportFormatError
        The malformed lines (only with ``skip_bad``), at most
        ``max_errors_reported`` of them, in file order.
    lines_read : int
        Physical lines read, including blank, comment and header lines.
    bad_lines : int
        How many malformed lines were skipped (may exceed ``len(errors)``).
    skipped : dict of str to int
        Well-formed lines of a signal type TakeBack does not import (see
        :data:`SKIPPED_SIGNAL_TYPES`), counted by type name.
    """

    entries: list[BankEntry]
    errors: list[ImportFormatError]
    lines_read: int
    bad_lines: int = 0
    skipped: dict[str, int] = field(default_factory=dict)


class _Bad(Exception):
    """A malformed value or line; the message says what is wrong with it."""


def _show(value: str, limit: int = 40) -> str:
    """``value`` quoted for a message, shortened when long."""
    return repr(value) if len(value) <= limit else repr(value[:limit]) + "..."


# --------------------------------------------------------------------------- fields


def _hex_bytes(text: str, digits: int) -> bytes | None:
    """The bytes of exactly ``digits`` hex digits, or None."""
    if len(text) != digits:
        return None
    try:
        value = bytes.fromhex(text)  # also accepts spaces, caught by the length below
    except ValueError:
        return None
    return value if len(value) * 2 == digits else None


def _pdq(text: str) -> PdqHash:
    text = text.strip()
    value = _hex_bytes(text, 64)
    if value is None:
        raise _Bad(f"{_show(text)} is not a PDQ hash: expected 64 hex digits")
    return PdqHash(value)


def _digest(text: str, what: str) -> str:
    """A lower-case MD5 (``what="MD5"``) or SHA-256 hex digest."""
    digits = 32 if what == "MD5" else 64
    text = text.strip()
    if _hex_bytes(text, digits) is None:
        raise _Bad(f"{_show(text)} is not an {what} digest: expected {digits} hex digits")
    return text.lower()


def _check_text(value: str, what: str) -> str:
    if "\x00" in value:
        raise _Bad(f"the {what} contains a NUL character")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _Bad(f"the {what} is not valid Unicode (a lone surrogate escape)") from None
    return value


def _check_int(value: int, what: str, low: int, high: int) -> int:
    if not low <= value <= high:
        raise _Bad(f"{what} must be between {low} and {high}, not {value}")
    return value


def _int_cell(text: str, what: str, low: int, high: int) -> int | None:
    text = text.strip()
    if not text:
        return None
    if not (len(text) <= 12 and text.isascii() and text.isdigit()):
        raise _Bad(f"{what} must be a whole number between {low} and {high}, not {_show(text)}")
    return _check_int(int(text), what, low, high)


def _utc_time(text: str) -> str:
    """Validate an ISO 8601 time with a zone; return it in UTC as ``...Z``."""
    try:
        moment = datetime.fromisoformat(text.strip())
        if moment.tzinfo is None:
            raise _Bad(f"added_at {_show(text)} has no time zone; write it in UTC, ending in Z")
        if _CANONICAL_TIME.fullmatch(text):
            return text  # already what the rest of TakeBack writes
        moment = moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise _Bad(
            f"added_at {_show(text)} is not an ISO 8601 time such as 2026-11-22T03:30:00Z"
        ) from None
    return moment.isoformat().replace("+00:00", "Z")


# --------------------------------------------------------------------------- reading


class _Reader:
    """One import in progress: the file, its lines, the errors and the defaults."""

    def __init__(
        self,
        read: Callable[[int], bytes],
        path: str,
        *,
        skip_bad: bool,
        label: str | None,
        source: str | None,
        max_errors: int,
    ) -> None:
        self.read = read
        self.path = path
        self.name = os.path.basename(path) or path
        self.skip_bad = skip_bad
        self.label = label
        self.source = source
        self.default_source = f"imported from {self.name}"
        self.max_errors = max_errors
        self.now = utc_now()
        self.entries: list[BankEntry] = []
        self.errors: list[ImportFormatError] = []
        self.bad_lines = 0
        self.skipped: dict[str, int] = {}
        self._times: dict[str, str] = {}
        self.lineno = 0
        #: First physical line of the CSV record being read (see ``_csv_lines``).
        self.record_start: int | None = None

    def bad(self, line: int, message: str) -> None:
        """A malformed line: raise, or with ``skip_bad`` record it and go on."""
        if not self.skip_bad:
            raise ImportFormatError(
                f"{self.name} line {line}: {message}{_SKIP_HINT}", path=self.path, line=line
            )
        self.bad_lines += 1
        if len(self.errors) < self.max_errors:
            self.errors.append(
                ImportFormatError(f"{self.name} line {line}: {message}", path=self.path, line=line)
            )

    def fatal(self, line: int, message: str) -> NoReturn:
        """A problem with the whole file, which ``skip_bad`` cannot help."""
        raise ImportFormatError(f"{self.name} line {line}: {message}", path=self.path, line=line)

    def skip(self, signal_type: str) -> None:
        self.skipped[signal_type] = self.skipped.get(signal_type, 0) + 1

    def default_label(self, line: int) -> str:
        return f"{self.name}:{line}"

    def time(self, text: str) -> str:
        """:func:`_utc_time`, remembered: the entries of one file often share a time."""
        known = self._times.get(text)
        if known is None:
            known = _utc_time(text)
            if len(self._times) >= 4096:
                self._times.clear()
            self._times[text] = known
        return known

    def lines(self) -> Iterator[tuple[int, str]]:
        """The file's lines as ``(line number, text without its newline)``.

        Reads the file in chunks of :data:`_CHUNK` bytes, so memory stays flat
        whatever the file holds. Lines that are longer than
        :data:`MAX_LINE_BYTES`, hold NUL bytes or are not UTF-8 go to
        :meth:`bad` and are not yielded. :attr:`lineno` ends as the number of
        physical lines read.
        """
        read = self.read
        check = self._check_line
        limit = MAX_LINE_BYTES
        lineno = 0
        carry = b""  # the unterminated end of the last chunk
        dropping = False  # inside a line too long to keep, until its newline
        first = True
        while True:
            chunk = read(_CHUNK)
            if not chunk:
                break
            if dropping:
                cut = chunk.find(b"\n")
                if cut < 0:
                    continue
                chunk, dropping = chunk[cut + 1 :], False
            if first:
                first = False
                if chunk.startswith(_BOM):
                    chunk = chunk[len(_BOM) :]
                elif chunk.startswith((b"\xff\xfe", b"\xfe\xff")):
                    self.lineno = 1
                    self.fatal(1, "the file is UTF-16 text; save it as UTF-8")
            data = carry + chunk if carry else chunk
            last = data.rfind(b"\n")
            if last >= 0:
                carry = data[last + 1 :]
                # The first line may continue an earlier chunk: check its length.
                cut = data.find(b"\n")
                lineno += 1
                text = check(data[:cut], lineno)
                if text is not None:
                    yield lineno, text
                if cut < last:
                    block = data[cut + 1 : last]
                    text = None
                    if b"\x00" not in block:
                        with contextlib.suppress(UnicodeDecodeError):
                            text = block.decode("utf-8")
                    if text is not None:  # the common case: all lines good
                        for line in text.split("\n"):
                            lineno += 1
                            yield lineno, line
                    else:
                        for raw in block.split(b"\n"):
                            lineno += 1
                            text = check(raw, lineno)
                            if text is not None:
                                yield lineno, text
            else:
                carry = data
            if len(carry) > limit:
                lineno += 1
                self.lineno = lineno
                check(carry, lineno)
                carry, dropping = b"", True
        if carry:
            lineno += 1
            text = check(carry, lineno)
            if text is not None:
                yield lineno, text
        self.lineno = lineno

    def _check_line(self, raw: bytes, lineno: int) -> str | None:
        """One line as text, or None (after :meth:`bad`) when it cannot be used."""
        self.lineno = lineno
        if len(raw) > MAX_LINE_BYTES:
            self.bad(
                lineno, f"the line is longer than {MAX_LINE_BYTES} bytes; is this a hash list?"
            )
            return None
        if b"\x00" in raw:
            self.bad(lineno, "the line contains NUL bytes; this looks like a binary file")
            return None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.bad(
                lineno,
                f"the line is not UTF-8 text (byte 0x{raw[exc.start]:02x} at position "
                f"{exc.start + 1}); save the file as UTF-8",
            )
            return None

    def report(self) -> ImportReport:
        return ImportReport(
            entries=self.entries,
            errors=self.errors,
            lines_read=self.lineno,
            bad_lines=self.bad_lines,
            skipped=dict(sorted(self.skipped.items())),
        )


def _read_pdq(r: _Reader) -> None:
    """Plain hex lines and python-threatexchange ``TYPE VALUE`` lines."""
    append = r.entries.append
    label, name, now = r.label, r.name, r.now
    source = r.source if r.source is not None else r.default_source
    fromhex = bytes.fromhex
    for line, text in r.lines():
        s = text if len(text) == 64 else text.strip()
        if not s or s[0] == "#":
            continue
        pdq: PdqHash | None = None
        md5 = None
        if len(s) == 64:  # the common case, kept fast
            try:
                value = fromhex(s)
            except ValueError:
                value = b""
            if len(value) == 32:
                pdq = PdqHash(value)
        if pdq is None:
            try:
                pdq, md5 = _pdq_line(s)
            except _Bad as exc:
                r.bad(line, str(exc))
                continue
            if pdq is None and md5 is None:
                r.skip(s.split(None, 1)[0].lower())
                continue
        append(
            BankEntry(
                label=label if label is not None else f"{name}:{line}",
                md5=md5,
                pdq=pdq,
                added_at=now,
                source=source,
            )
        )


def _pdq_line(s: str) -> tuple[PdqHash | None, str | None]:
    """Parse a line that is not a bare PDQ hash; ``(None, None)`` means skip it."""
    parts = s.split(None, 1)
    if len(parts) == 1:
        return _pdq(s), None
    kind, value = parts[0].lower(), parts[1].strip()
    if kind == "pdq":
        return _pdq(value), None
    if kind == "photo_md5":
        return None, _digest(value, "MD5")
    if kind in SKIPPED_SIGNAL_TYPES:
        return None, None
    if _hex_bytes(parts[0], 64) is not None:
        raise _Bad(f"expected one PDQ hash on the line, found {_show(value)} after it")
    raise _Bad(
        f"{_show(parts[0])} is not a signal type TakeBack reads "
        "(a line is a PDQ hash, 'pdq HASH' or 'photo_md5 HASH')"
    )


@dataclass(frozen=True, slots=True)
class _Columns:
    """Where each known column is in a CSV row (None: absent), and the row width."""

    width: int
    signal_type: int
    signal_str: int
    collab: int | None
    category: int | None
    tags: int | None
    label: int | None
    sha256: int | None
    md5: int | None
    quality: int | None
    width_px: int | None
    height_px: int | None
    added_at: int | None
    source: int | None


def _read_te_csv(r: _Reader) -> None:
    """ThreatExchange CSV, with or without TakeBack's columns."""
    reader = csv.reader(_csv_lines(r), strict=True)
    columns: _Columns | None = None
    append = r.entries.append
    while True:
        r.record_start = None
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            r.bad(r.record_start or r.lineno, f"the line is not valid CSV ({exc})")
            continue
        line = r.record_start or r.lineno
        if not any(cell.strip() for cell in row):
            continue
        if columns is None:
            columns = _csv_header(r, row, line)
            continue
        if len(row) != columns.width:
            if len(row) > columns.width:
                r.bad(
                    line,
                    f"the row has {len(row)} fields but the header names {columns.width}; "
                    "put fields that contain commas in double quotes",
                )
                continue
            row.extend([""] * (columns.width - len(row)))
        try:
            entry = _csv_entry(r, columns, row, line)
        except _Bad as exc:
            r.bad(line, str(exc))
            continue
        if entry is not None:
            append(entry)


def _csv_lines(r: _Reader) -> Iterator[str]:
    """Lines for :func:`csv.reader`, newline restored, noting where a record starts."""
    for line, text in r.lines():
        r.lineno = line
        if r.record_start is None:
            r.record_start = line
        yield text + "\n"


def _csv_header(r: _Reader, row: list[str], line: int) -> _Columns:
    known = TE_CSV_COLUMNS + TAKEBACK_CSV_COLUMNS
    found: dict[str, int] = {}
    for i, cell in enumerate(row):
        name = cell.strip().lower()
        if name in found and name in known:
            r.fatal(line, f"the header names the column {name!r} twice")
        found.setdefault(name, i)
    missing = [c for c in ("signal_type", "signal_str") if c not in found]
    if missing:
        text = ",".join(row)
        hint = "; separate the fields with commas" if ";" in text or "\t" in text else ""
        r.fatal(
            line,
            f"the header has no {' or '.join(missing)} column: a ThreatExchange CSV starts "
            f"with the header {','.join(TE_CSV_COLUMNS)}, found {_show(text)}{hint}",
        )
    get = found.get
    return _Columns(
        width=len(row),
        signal_type=found["signal_type"],
        signal_str=found["signal_str"],
        collab=get("collab"),
        category=get("category"),
        tags=get("tags"),
        label=get("label"),
        sha256=get("sha256"),
        md5=get("md5"),
        quality=get("quality"),
        width_px=get("width"),
        height_px=get("height"),
        added_at=get("added_at"),
        source=get("source"),
    )


def _csv_entry(r: _Reader, c: _Columns, row: list[str], line: int) -> BankEntry | None:
    """One data row (padded to the header's width) as an entry; None to skip it."""
    kind = row[c.signal_type].strip().lower()
    if kind != "pdq" and kind != "photo_md5":
        if kind in SKIPPED_SIGNAL_TYPES:
            r.skip(kind)
            return None
        if not kind:
            raise _Bad("signal_type is empty")
        raise _Bad(
            f"signal type {_show(kind)} is not one TakeBack reads "
            "(it imports pdq and photo_md5 rows)"
        )
    md5 = None
    if c.md5 is not None and (text := row[c.md5]):
        md5 = _digest(text, "MD5")
    pdq = None
    if kind == "pdq":
        pdq = _pdq(row[c.signal_str])
    else:
        signal_md5 = _digest(row[c.signal_str], "MD5")
        if md5 is not None and md5 != signal_md5:
            raise _Bad("the md5 column differs from the photo_md5 signal_str")
        md5 = signal_md5

    text = row[c.label] if c.label is not None else ""
    if text:
        label = _check_text(text, "label")
    else:
        label = r.label if r.label is not None else r.default_label(line)
    text = row[c.source] if c.source is not None else ""
    if text:
        source: str | None = _check_text(text, "source")
    elif r.source is not None:
        source = r.source
    elif c.source is None:
        source = _te_source(r, c, row)
    else:
        source = None  # TakeBack's own export: the entry had none
    sha256 = None
    if c.sha256 is not None and (text := row[c.sha256]):
        sha256 = _digest(text, "SHA-256")
    added_at = r.now
    if c.added_at is not None and (text := row[c.added_at].strip()):
        added_at = r.time(text)
    return BankEntry(
        label=label,
        sha256=sha256,
        md5=md5,
        pdq=pdq,
        quality=None if c.quality is None else _int_cell(row[c.quality], "quality", 0, 100),
        width=None if c.width_px is None else _int_cell(row[c.width_px], "width", 1, _MAX_SIDE),
        height=(
            None if c.height_px is None else _int_cell(row[c.height_px], "height", 1, _MAX_SIDE)
        ),
        added_at=added_at,
        source=source,
    )


def _te_source(r: _Reader, c: _Columns, row: list[str]) -> str:
    """The provenance note for a partner row: the file and its ThreatExchange opinion."""
    parts = []
    for what, index in (("collab", c.collab), ("category", c.category), ("tags", c.tags)):
        value = row[index].strip() if index is not None else ""
        if value:
            parts.append(f"{what} {value!r}" if what == "collab" else f"{what} {value}")
    note = r.default_source
    if parts:
        note += " (" + ", ".join(parts) + ")"
    return note


_DECODER: Final = json.JSONDecoder()


def _read_jsonl(r: _Reader) -> None:
    """TakeBack JSON lines; the header object is optional and may repeat."""
    decode = _DECODER.raw_decode
    append = r.entries.append
    for line, text in r.lines():
        s = text.strip()
        if not s:
            continue
        try:
            obj, end = decode(s)
        except json.JSONDecodeError as exc:
            r.bad(line, f"the line is not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        except RecursionError:
            r.bad(line, "the line is not valid JSON (nested too deeply)")
            continue
        except ValueError as exc:  # e.g. an integer with thousands of digits
            r.bad(line, f"the line is not valid JSON ({exc})")
            continue
        if end != len(s):
            r.bad(line, f"the line holds more than one JSON value (extra data at column {end + 1})")
            continue
        if type(obj) is not dict:
            r.bad(line, f"expected a JSON object {{...}}, found {_json_kind(obj)}")
            continue
        if "format" in obj:
            _jsonl_header(r, obj, line)
            continue
        try:
            append(_json_entry(r, obj, line))
        except _Bad as exc:
            r.bad(line, str(exc))


def _json_kind(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "true/false"
    if value is None:
        return "null"
    return "a number"


def _jsonl_header(r: _Reader, obj: dict[str, object], line: int) -> None:
    fmt, version = obj.get("format"), obj.get("version")
    if fmt != JSONL_FORMAT:
        r.fatal(line, f"the header says format {fmt!r}; TakeBack reads {JSONL_FORMAT!r} files")
    if type(version) is not int or version < 1:
        r.fatal(line, f"the header has version {version!r}; expected a whole number from 1")
    if version > JSONL_VERSION:
        r.fatal(
            line,
            f"the file is format version {version}, newer than this TakeBack reads "
            f"({JSONL_VERSION}); upgrade TakeBack to import it",
        )


def _found(value: object) -> str:
    """A JSON value for a message: arrays and objects by kind, the rest as written."""
    if isinstance(value, dict | list):
        return _json_kind(value)
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:40] + "..."


def _json_str(value: object, key: str) -> str | None:
    if value is None or type(value) is str:
        return value
    raise _Bad(f"{key} must be a string or null, found {_found(value)}")


def _json_int(value: object, key: str, low: int, high: int) -> int | None:
    if value is None:
        return None
    if type(value) is not int:
        raise _Bad(
            f"{key} must be a whole number between {low} and {high} or null, found {_found(value)}"
        )
    return _check_int(value, key, low, high)


def _json_entry(r: _Reader, obj: dict[str, object], line: int) -> BankEntry:
    get = obj.get
    pdq_text = _json_str(get("pdq"), "pdq")
    md5_text = _json_str(get("md5"), "md5")
    sha_text = _json_str(get("sha256"), "sha256")
    if pdq_text is None and md5_text is None and sha_text is None:
        raise _Bad("the entry has no pdq, md5 or sha256; it needs at least one hash")
    text = _json_str(get("label"), "label")
    if text is not None:
        label = _check_text(text, "label")
    else:
        label = r.label if r.label is not None else r.default_label(line)
    text = _json_str(get("source"), "source")
    if text is not None:
        source: str | None = _check_text(text, "source")
    elif r.source is not None:
        source = r.source
    else:
        source = None if "source" in obj else r.default_source
    added = _json_str(get("added_at"), "added_at")
    return BankEntry(
        label=label,
        sha256=None if sha_text is None else _digest(sha_text, "SHA-256"),
        md5=None if md5_text is None else _digest(md5_text, "MD5"),
        pdq=None if pdq_text is None else _pdq(pdq_text),
        quality=_json_int(get("quality"), "quality", 0, 100),
        width=_json_int(get("width"), "width", 1, _MAX_SIDE),
        height=_json_int(get("height"), "height", 1, _MAX_SIDE),
        added_at=r.now if added is None else r.time(added),
        source=source,
    )


_READERS: Final = {"pdq": _read_pdq, "te-csv": _read_te_csv, "jsonl": _read_jsonl}


# --------------------------------------------------------------------------- files


def _open(path: str) -> io.BufferedReader:
    """Open ``path`` for reading bytes, translating OS errors."""
    name = os.path.basename(path) or path
    try:
        file = open(path, "rb")  # noqa: SIM115 (closed by the caller)
    except FileNotFoundError:
        raise FileAccessError(f"{name} does not exist; check the path", path=path) from None
    except IsADirectoryError:
        raise FileAccessError(f"{name} is a directory, not a hash list", path=path) from None
    except PermissionError:
        raise FileAccessError(f"cannot read {name}: permission denied", path=path) from None
    except OSError as exc:
        raise FileAccessError(f"cannot read {name}: {exc.strerror or exc}", path=path) from exc
    try:
        mode = os.fstat(file.fileno()).st_mode
    except OSError as exc:
        file.close()
        raise FileAccessError(f"cannot read {name}: {exc.strerror or exc}", path=path) from exc
    if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
        file.close()
        kind = "a directory" if stat.S_ISDIR(mode) else "a device or socket"
        raise FileAccessError(f"{name} is {kind}, not a hash list", path=path)
    return file


def _after(head: bytes, read: Callable[[int], bytes]) -> Callable[[int], bytes]:
    """A ``read`` that first returns ``head`` (already read), then the rest."""
    pending = [head] if head else []

    def read_on(size: int) -> bytes:
        return pending.pop() if pending else read(size)

    return read_on


def _sniff(head: bytes, path: str) -> str:
    """Guess a format from the first bytes of a file."""
    if head.startswith(_BOM):
        head = head[len(_BOM) :]
    lines = head.split(b"\n")
    if len(head) >= _SNIFF_BYTES and len(lines) > 1:
        lines.pop()  # the last line may be cut short
    for lineno, raw in enumerate(lines, start=1):
        s = raw.decode("utf-8", errors="replace").strip()
        if not s or s.startswith("#"):
            continue
        first = s.split(None, 1)[0].lower()
        if s.startswith("{"):
            return "jsonl"
        if _hex_bytes(s, 64) is not None or first in ("pdq", "photo_md5", *SKIPPED_SIGNAL_TYPES):
            return "pdq"
        if "," in s:
            return "te-csv"
        name = os.path.basename(path) or path
        raise ImportFormatError(
            f"cannot tell the format of {name} from line {lineno} ({_show(s)}); "
            f"pass --format {', '.join(FORMATS[:-1])} or {FORMATS[-1]}",
            path=path,
            line=lineno,
        )
    return "pdq"  # empty, or only comments: every reader returns no entries


def detect_format(path: str | os.PathLike[str], first_bytes: bytes | None = None) -> str:
    """The format of an import file, from its extension or else its first line.

    Parameters
    ----------
    path : str or os.PathLike
        The file. Its extension decides when it is one of ``.csv`` (te-csv),
        ``.jsonl`` / ``.ndjson`` (jsonl), ``.txt`` / ``.pdq`` (pdq).
    first_bytes : bytes, optional
        The start of the file, when the caller already has it (for a pipe);
        otherwise up to 64 KiB are read from ``path``.

    Returns
    -------
    str
        One of :data:`FORMATS`. By content, the first line that is neither
        blank nor a ``#`` comment decides: starting with ``{``, jsonl; a PDQ
        hash or a python-threatexchange ``TYPE VALUE`` line, pdq; else with a
        comma, te-csv. An empty file is pdq.

    Raises
    ------
    ImportFormatError
        The content fits none of the formats.
    FileAccessError
        ``first_bytes`` is None and the file cannot be read.

    Examples
    --------
    >>> detect_format("partner.csv")
    'te-csv'
    >>> detect_format("list", first_bytes=b'{"format": "takeback-bank", "version": 1}\\n')
    'jsonl'
    """
    text_path = os.fspath(path)
    fmt = _EXTENSIONS.get(os.path.splitext(text_path)[1].lower())
    if fmt is not None:
        return fmt
    if first_bytes is None:
        with _open(text_path) as file:
            try:
                first_bytes = file.read(_SNIFF_BYTES)
            except OSError as exc:
                raise FileAccessError(
                    f"cannot read {os.path.basename(text_path)}: {exc.strerror or exc}",
                    path=text_path,
                ) from exc
    return _sniff(first_bytes, text_path)


def read_entries(
    path: str | os.PathLike[str],
    *,
    fmt: str | None = None,
    skip_bad: bool = False,
    label: str | None = None,
    source: str | None = None,
    max_errors_reported: int = 100,
) -> ImportReport:
    """Parse a whole hash-list file into bank entries.

    Parameters
    ----------
    path : str or os.PathLike
        A regular file or a pipe.
    fmt : {'pdq', 'te-csv', 'jsonl'}, optional
        The format; by default :func:`detect_format` decides.
    skip_bad : bool
        False (the default): the first malformed line raises, so the caller
        imports nothing. True: malformed lines are collected in
        :attr:`ImportReport.errors` and the good ones returned.
    label : str, optional
        The label of entries whose line carries none (every pdq line; a te-csv
        row without a label column or with an empty cell; a jsonl object without
        a label or with null). Without it such entries get
        ``"<file name>:<line>"``. A label the line carries is kept.
    source : str, optional
        The provenance note of entries whose line carries none (as for
        ``label``). Without it they get ``"imported from <file name>"`` (for a
        partner's te-csv row followed by its collab, category and tags), except
        that an empty ``source`` cell or a null ``source`` in a file that has the
        field means the entry had none, and stays None.
    max_errors_reported : int
        With ``skip_bad``, keep at most this many errors (all are counted in
        :attr:`ImportReport.bad_lines`).

    Returns
    -------
    ImportReport
        Entries with ``id`` and ``seq`` unset; ``added_at`` is the line's own
        time (normalized to UTC) or the time of this import.

    Raises
    ------
    ImportFormatError
        A malformed line (unless ``skip_bad``), or a problem with the whole file
        (a CSV header without ``signal_type`` and ``signal_str``, a JSON-lines
        header of another format or a newer version, content of no known
        format) whatever ``skip_bad`` says. The message names the file and the
        line, and says what is wrong.
    FileAccessError
        The file is missing, unreadable, a directory or a device.
    InputError
        ``fmt`` is not one of :data:`FORMATS`.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> path = pathlib.Path(folder, "partner.txt")
    >>> _ = path.write_text("# from a partner\\n" + "f8" * 32 + "\\nabc\\n")
    >>> report = read_entries(path, skip_bad=True)
    >>> [(e.label, str(e.pdq)[:8]) for e in report.entries]
    [('partner.txt:2', 'f8f8f8f8')]
    >>> print(report.errors[0])
    partner.txt line 3: 'abc' is not a PDQ hash: expected 64 hex digits
    """
    text_path = os.fspath(path)
    if fmt is not None and fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    with _open(text_path) as file:
        try:
            read: Callable[[int], bytes] = file.read
            if fmt is None:
                fmt = _EXTENSIONS.get(os.path.splitext(text_path)[1].lower())
                if fmt is None:
                    head = file.read(_SNIFF_BYTES)  # whole, even from a slow pipe
                    fmt = _sniff(head, text_path)
                    read = _after(head, file.read)
            reader = _Reader(
                read,
                text_path,
                skip_bad=skip_bad,
                label=label,
                source=source,
                max_errors=max(0, max_errors_reported),
            )
            _READERS[fmt](reader)
        except OSError as exc:
            name = os.path.basename(text_path) or text_path
            raise FileAccessError(
                f"cannot read {name}: {exc.strerror or exc}", path=text_path
            ) from exc
    return reader.report()


# --------------------------------------------------------------------------- writing


def _cell(value: int | str | None) -> str:
    return "" if value is None else str(value)


def write_entries(entries: Iterable[BankEntry], out: TextIO, *, fmt: str) -> int:
    """Write entries in an exchange format.

    Parameters
    ----------
    entries : iterable of BankEntry
        Consumed once, as a stream.
    out : TextIO
        A text stream; open files with ``encoding="utf-8"`` and ``newline=""``
        (te-csv rows end in CRLF, as CSV does; the other formats use LF).
    fmt : {'pdq', 'te-csv', 'jsonl'}
        ``pdq`` writes the PDQ hash of each entry that has one; ``te-csv`` writes
        one row per entry that has a PDQ hash or an MD5; ``jsonl`` writes a
        header line and every entry.

    Returns
    -------
    int
        The number of entries written (entries a format cannot carry are left
        out and not counted).

    Raises
    ------
    InputError
        ``fmt`` is not one of :data:`FORMATS`.

    Examples
    --------
    >>> import io
    >>> from takeback.bank.model import BankEntry
    >>> out = io.StringIO()
    >>> write_entries([BankEntry(label="a", md5="0" * 32, added_at="2026-11-22T03:30:00Z")],
    ...               out, fmt="jsonl")
    1
    >>> print(out.getvalue().splitlines()[0])
    {"format":"takeback-bank","version":1}
    """
    count = 0
    if fmt == "pdq":
        write = out.write
        for entry in entries:
            if entry.pdq is not None:
                write(f"{entry.pdq}\n")
                count += 1
    elif fmt == "te-csv":
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(TE_CSV_COLUMNS + TAKEBACK_CSV_COLUMNS)
        for entry in entries:
            if entry.pdq is not None:
                kind, signal = "pdq", str(entry.pdq)
            elif entry.md5 is not None:
                kind, signal = "photo_md5", entry.md5
            else:
                continue
            writer.writerow(
                (
                    kind,
                    signal,
                    "",
                    "",
                    "",
                    entry.label,
                    _cell(entry.sha256),
                    _cell(entry.md5),
                    _cell(entry.quality),
                    _cell(entry.width),
                    _cell(entry.height),
                    entry.added_at,
                    _cell(entry.source),
                )
            )
            count += 1
    elif fmt == "jsonl":
        write = out.write
        write(json.dumps({"format": JSONL_FORMAT, "version": JSONL_VERSION}, separators=(",", ":")))
        write("\n")
        for entry in entries:
            # No derivative fingerprint (nor its digest): they stay in the bank
            # that holds them (see formats.md).
            write(json.dumps(entry.to_dict(), separators=(",", ":")))
            write("\n")
            count += 1
    else:
        raise InputError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return count

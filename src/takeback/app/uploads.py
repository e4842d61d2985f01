"""Uploaded files: read into memory, named safely, written only to a private folder.

The page sends files to the local server as ``multipart/form-data``. Starlette
would spool parts over 1 MB into temporary files; :func:`read_form` keeps every
part in memory instead and refuses a body larger than the caller allows. When a
library call needs a path (examination, Content Credentials, the evidence
package), :func:`private_dir` gives a folder only this user can read, in RAM
(``/dev/shm``) when the system has it, removed with everything in it when the
request ends, and :func:`scrubbed` takes that folder's name out of any error
message, so messages name the file as the person chose it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import unicodedata
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from ..errors import ImageTooLargeError, InputError, TakeBackError

__all__ = [
    "FORM_SLACK",
    "Upload",
    "UploadTooLarge",
    "private_dir",
    "read_form",
    "safe_name",
    "scrubbed",
    "stage",
]

#: Bytes allowed on top of the files themselves (multipart headers, text fields).
FORM_SLACK: Final = 1024 * 1024
#: Longest text field accepted, in bytes.
MAX_FIELD_BYTES: Final = 64 * 1024
_SHM: Final = Path("/dev/shm")


class UploadTooLarge(ImageTooLargeError):
    """The request body is larger than the files it may carry (``image_too_large``)."""


@dataclass(frozen=True, slots=True)
class Upload:
    """One uploaded file, in memory.

    Attributes
    ----------
    field : str
        The form field it came in (``suspect``, ``original``, ``photo``, ...).
    name : str
        The file's name as the browser gave it, reduced by :func:`safe_name`.
    data : bytes
    """

    field: str
    name: str
    data: bytes


class _InMemoryParser(MultiPartParser):
    # Never roll a part over into a temporary file: the body size is capped below.
    spool_max_size = 1 << 62


async def _capped(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise UploadTooLarge(_too_large(int(declared), limit))
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > limit:
            raise UploadTooLarge(_too_large(seen, limit))
        yield chunk


def _too_large(size: int, limit: int) -> str:
    return (
        f"the upload is {size:,} bytes or more; at most {limit:,} bytes are accepted at once "
        "(raise TAKEBACK_MAX_FILE_BYTES if the files are genuine)"
    )


async def read_form(
    request: Request, *, max_bytes: int, max_files: int = 4
) -> tuple[dict[str, str], dict[str, Upload]]:
    """Parse a ``multipart/form-data`` request entirely in memory.

    Parameters
    ----------
    request : Request
    max_bytes : int
        Largest accepted body; larger ones are refused before or while reading.
    max_files : int
        Most file parts accepted.

    Returns
    -------
    (fields, files)
        Text fields by name, and the non-empty files by field name (an empty
        file input sends a part without a name and no bytes: it is left out).

    Raises
    ------
    UploadTooLarge
        The body is over ``max_bytes``.
    InputError
        The body is not a well-formed form.
    """
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise InputError("expected a form with files (multipart/form-data)")
    parser = _InMemoryParser(
        request.headers,
        _capped(request, max_bytes),
        max_files=max_files,
        max_fields=32,
        max_part_size=MAX_FIELD_BYTES,
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise InputError(f"the form could not be read ({exc.message})") from exc
    fields: dict[str, str] = {}
    files: dict[str, Upload] = {}
    try:
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                data = await value.read()
                if value.filename and data:
                    files[key] = Upload(key, safe_name(value.filename), data)
                elif value.filename and not data:
                    files[key] = Upload(key, safe_name(value.filename), b"")
            else:
                fields[key] = value
    finally:
        await form.close()
    return fields, files


def safe_name(filename: str, *, fallback: str = "image") -> str:
    """The last part of a browser-given file name, safe to use as a file name here.

    Folders are dropped, control characters and separators removed, the length
    capped; an empty or dot-only result becomes ``fallback``.

    Examples
    --------
    >>> safe_name("holiday/../me at the beach.JPG")
    'me at the beach.JPG'
    >>> safe_name("C:\\\\Users\\\\me\\\\photo.png"), safe_name("..")
    ('photo.png', 'image')
    """
    name = unicodedata.normalize("NFC", filename).replace("\\", "/").rsplit("/", 1)[-1]
    name = re.sub(r"[\x00-\x1f\x7f]", "", name).strip()
    if len(name) > 120:
        stem, dot, suffix = name.rpartition(".")
        name = (stem[:100] + dot + suffix[:15]) if dot and len(suffix) <= 15 else name[:120]
    if not name.strip(". "):
        return fallback
    return name


def _private_root() -> str | None:
    if _SHM.is_dir() and os.access(_SHM, os.W_OK | os.X_OK):
        return str(_SHM)
    return None


@contextlib.contextmanager
def private_dir() -> Iterator[Path]:
    """A folder only this user can read (mode 0700), removed with its contents afterwards.

    In RAM (``/dev/shm``) when available, else the system's temporary folder.
    TakeBack errors raised inside have the folder's name taken out of their
    message (see :func:`scrubbed`).
    """
    root = Path(tempfile.mkdtemp(prefix="takeback-app-", dir=_private_root()))
    try:
        with scrubbed(root):
            yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def scrubbed(root: Path) -> Iterator[None]:
    """Remove ``root`` (and its first-level sub-folder) from TakeBack error messages."""
    try:
        yield
    except TakeBackError as exc:
        pattern = re.compile(re.escape(str(root)) + r"/(?:[^/\s]+/)?")
        exc.message = pattern.sub("", exc.message)
        exc.args = (exc.message,)
        if exc.path is not None:
            exc.path = pattern.sub("", exc.path)
        raise


def stage(root: Path, upload: Upload) -> Path:
    """Write ``upload`` into its own sub-folder of ``root`` under its own name."""
    folder = root / upload.field
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / upload.name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(upload.data)
    return path

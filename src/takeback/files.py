"""Turning command-line arguments into a list of image files.

An argument may be a file (used whatever its extension), a directory (searched
recursively for files with an image extension; symbolic links are followed but
a directory is never entered twice, so link loops end), or a glob pattern
(``photos/**/*.jpg``). Problems with one argument become an item carrying the
error, so the rest of a batch still runs.
"""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from .errors import FileAccessError, TakeBackError

__all__ = ["IMAGE_EXTENSIONS", "InputItem", "collect_inputs", "write_atomic"]

#: File extensions picked up when a directory is searched (case-insensitive).
IMAGE_EXTENSIONS: Final = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".jpe",
        ".jfif",
        ".png",
        ".webp",
        ".tif",
        ".tiff",
        ".gif",
        ".bmp",
        ".heic",
        ".heif",
        ".avif",
    }
)
_GLOB_CHARS: Final = frozenset("*?[")


@dataclass(frozen=True, slots=True)
class InputItem:
    """One input: a path to process, or a path with the error that stops it."""

    path: str
    error: TakeBackError | None = None


def collect_inputs(args: list[str]) -> list[InputItem]:
    """Expand arguments into files, in a stable order, each file once.

    Examples
    --------
    >>> collect_inputs(["no/such/file.jpg"])[0].error.code
    'file_unreadable'
    """
    items: list[InputItem] = []
    seen: set[str] = set()

    def add(item: InputItem) -> None:
        key = os.path.realpath(item.path) if item.error is None else item.path
        if key not in seen:
            seen.add(key)
            items.append(item)

    for arg in args:
        if os.path.isdir(arg):
            for item in _walk(arg):
                add(item)
        elif os.path.lexists(arg):
            add(InputItem(arg))
        elif _GLOB_CHARS & set(arg):
            matches = sorted(glob.glob(arg, recursive=True))
            if not matches:
                add(
                    InputItem(arg, FileAccessError(f"{arg}: no files match this pattern", path=arg))
                )
            for match in matches:
                if os.path.isdir(match):
                    for item in _walk(match):
                        add(item)
                else:
                    add(InputItem(match))
        else:
            add(InputItem(arg, FileAccessError(f"{arg}: no such file or directory", path=arg)))
    return items


def _walk(root: str) -> list[InputItem]:
    found: list[InputItem] = []
    visited: set[str] = set()

    def on_error(exc: OSError) -> None:
        where = exc.filename or root
        found.append(
            InputItem(
                where,
                FileAccessError(
                    f"{where}: cannot list this directory ({exc.strerror}); check its permissions",
                    path=where,
                ),
            )
        )

    for dirpath, dirnames, filenames in os.walk(root, onerror=on_error, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in visited:  # a symbolic-link loop, or a directory reached twice
            dirnames[:] = []
            continue
        visited.add(real)
        dirnames.sort()
        for name in sorted(filenames):
            if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                found.append(InputItem(os.path.join(dirpath, name)))
    return found


def write_atomic(
    path: str | os.PathLike[str], data: bytes, *, hint: str = "choose another path"
) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    A crash leaves either the old file or the new one, never half of it.
    Raises :class:`FileAccessError` (with ``hint``) when the folder is not writable.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    except OSError as exc:
        raise FileAccessError(
            f"cannot write to {directory} ({exc.strerror}); {hint}", path=str(path)
        ) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise

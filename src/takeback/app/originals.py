"""The list of where a person's registered originals are on this computer.

The bank holds fingerprints, never photos, so to compare a suspect with its
original TakeBack needs the original's file. The app keeps a list of file
paths only when the person ticks "remember where my originals are on this
computer"; otherwise it asks for the original each time. The list holds paths
and SHA-256 digests, never pixels, in ``originals.json`` (mode 0600) in the
app's folder; "forget" deletes the file.

A browser never tells a page where a chosen file lives, so the person names the
folder, and each registered photo is looked for there by size and SHA-256.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ..bank.model import utc_now
from ..errors import FileAccessError, InputError
from ..files import IMAGE_EXTENSIONS

__all__ = [
    "MAX_FILES_SEARCHED",
    "RememberResult",
    "forget",
    "load",
    "remember",
    "resolve_folder",
]

#: A folder search stops after looking at this many files.
MAX_FILES_SEARCHED: Final = 50_000
_FORMAT: Final = "takeback-app-originals"


@dataclass(frozen=True, slots=True)
class RememberResult:
    """What :func:`remember` found.

    Attributes
    ----------
    found : dict of str to str
        SHA-256 -> the file's path, for each photo found in the folder.
    missing : list of str
        SHA-256 of the photos not found there.
    searched : int
        Image files looked at.
    truncated : bool
        The search stopped at :data:`MAX_FILES_SEARCHED` files.
    """

    found: dict[str, str]
    missing: list[str]
    searched: int
    truncated: bool


def load(path: Path) -> dict[str, dict[str, str]]:
    """The remembered originals: SHA-256 -> ``{"path", "remembered_at"}`` (empty if none).

    A damaged list is treated as empty (it only saves the person dropping the
    original again).
    """
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(raw, dict) or raw.get("format") != _FORMAT:
        return {}
    out: dict[str, dict[str, str]] = {}
    for item in raw.get("originals", []):
        if isinstance(item, dict) and isinstance(item.get("path"), str):
            sha = item.get("sha256")
            if isinstance(sha, str) and len(sha) == 64:
                out[sha] = {"path": item["path"], "remembered_at": str(item.get("at", ""))}
    return out


def _save(path: Path, entries: dict[str, dict[str, str]]) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    doc: dict[str, Any] = {
        "format": _FORMAT,
        "version": 1,
        "originals": [
            {"sha256": sha, "path": e["path"], "at": e.get("remembered_at", "")}
            for sha, e in sorted(entries.items(), key=lambda kv: kv[1]["path"])
        ],
    }
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=1)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def resolve_folder(text: str) -> Path:
    """The folder a person typed: ``~`` expanded, relative to the home folder.

    Raises
    ------
    InputError
        Nothing was typed.
    FileAccessError
        It is not an existing folder.

    Examples
    --------
    >>> resolve_folder("Pictures") == Path.home() / "Pictures"  # doctest: +SKIP
    True
    """
    text = text.strip()
    if not text:
        raise InputError("type the folder where these photos are, e.g. Pictures/me")
    folder = Path(text).expanduser()
    if not folder.is_absolute():
        folder = Path.home() / folder
    if not folder.is_dir():
        raise FileAccessError(
            f"{text} is not a folder on this computer; type the folder that holds the "
            "photos (e.g. Pictures/me, or its full path)",
            path=text,
        )
    return folder


def _sha256(path: str) -> str | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def remember(path: Path, folder: Path, wanted: Iterable[tuple[str, int]]) -> RememberResult:
    """Look for photos in ``folder`` (recursively) and remember where they are.

    Parameters
    ----------
    path : Path
        The list file (``AppConfig.originals_file``).
    folder : Path
        Where the person says the photos are.
    wanted : iterable of (sha256, size)
        The registered photos: their SHA-256 and size in bytes (only files of a
        wanted size are read).
    """
    sizes: dict[int, set[str]] = {}
    for sha, size in wanted:
        sizes.setdefault(int(size), set()).add(sha.lower())
    todo = {sha for shas in sizes.values() for sha in shas}
    found: dict[str, str] = {}
    searched = 0
    truncated = False
    seen_dirs: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen_dirs:
            dirnames[:] = []
            continue
        seen_dirs.add(real)
        dirnames.sort()
        for name in sorted(filenames):
            if os.path.splitext(name)[1].lower() not in IMAGE_EXTENSIONS:
                continue
            searched += 1
            if searched > MAX_FILES_SEARCHED:
                truncated = True
                break
            file = os.path.join(dirpath, name)
            try:
                size = os.stat(file).st_size
            except OSError:
                continue
            if size not in sizes:
                continue
            digest = _sha256(file)
            if digest is not None and digest in todo and digest not in found:
                found[digest] = os.path.abspath(file)
        if truncated or len(found) == len(todo):
            break
    if found:
        entries = load(path)
        when = utc_now()
        for sha, file in found.items():
            entries[sha] = {"path": file, "remembered_at": when}
        _save(path, entries)
    return RememberResult(
        found=found,
        missing=sorted(todo - set(found)),
        searched=min(searched, MAX_FILES_SEARCHED),
        truncated=truncated,
    )


def forget(path: Path) -> int:
    """Delete the list; returns how many originals it named (0 if there was none)."""
    count = len(load(path))
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return count

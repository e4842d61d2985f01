"""Where TakeBack keeps its files on this machine."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["takeback_home"]


def takeback_home(environ: dict[str, str] | None = None) -> Path:
    """TakeBack's home directory: ``$TAKEBACK_HOME``, else the platform data directory.

    The bank lives in ``home / "bank"`` and signing keys in ``home / "keys"``;
    on Linux the default home is ``~/.local/share/takeback``.

    Examples
    --------
    >>> takeback_home({"TAKEBACK_HOME": "/srv/takeback"})
    PosixPath('/srv/takeback')
    """
    env = os.environ if environ is None else environ
    home = env.get("TAKEBACK_HOME")
    if home:
        return Path(home).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("takeback", appauthor=False))

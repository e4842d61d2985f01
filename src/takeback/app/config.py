"""Where the local app keeps its files, and the limits it applies to uploads."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..home import takeback_home
from ..imageio import ImageLimits

__all__ = ["AppConfig"]


@dataclass(frozen=True, slots=True)
class AppConfig:
    """Settings of one ``takeback app`` run.

    Attributes
    ----------
    home : Path
        TakeBack's home on this computer (``$TAKEBACK_HOME``, else the platform
        data directory). Keys for Content Credentials go to ``home / "keys"``
        (created on first use), the app's own files to ``home / "app"``.
    bank_dir : Path
        The hash bank (``home / "bank"`` unless ``--bank`` says otherwise): the
        same bank ``takeback bank`` and ``takeback match`` use.
    limits : ImageLimits
        Size limits applied to every uploaded file (``TAKEBACK_MAX_FILE_BYTES``,
        ``TAKEBACK_MAX_PIXELS``).
    bank_timeout : float
        Seconds to wait for another process's write lock on the bank
        (``TAKEBACK_BANK_TIMEOUT``).

    Examples
    --------
    >>> cfg = AppConfig.from_env(home=Path("/srv/tb"), environ={})
    >>> cfg.bank_dir, cfg.keys_dir
    (PosixPath('/srv/tb/bank'), PosixPath('/srv/tb/keys'))
    """

    home: Path
    bank_dir: Path
    limits: ImageLimits
    bank_timeout: float = 5.0

    @classmethod
    def from_env(
        cls,
        *,
        home: Path | None = None,
        bank: Path | None = None,
        limits: ImageLimits | None = None,
        environ: dict[str, str] | None = None,
    ) -> AppConfig:
        """Settings from the arguments, else the environment, else the defaults.

        Raises
        ------
        ValueError
            ``TAKEBACK_MAX_PIXELS``, ``TAKEBACK_MAX_FILE_BYTES`` or
            ``TAKEBACK_BANK_TIMEOUT`` is malformed.
        """
        env = os.environ if environ is None else environ
        root = Path(home).expanduser() if home is not None else takeback_home(dict(env))
        if bank is None and env.get("TAKEBACK_BANK"):
            bank = Path(env["TAKEBACK_BANK"]).expanduser()
        raw_timeout = env.get("TAKEBACK_BANK_TIMEOUT", "5")
        try:
            timeout = max(0.0, float(raw_timeout))
        except ValueError:
            raise ValueError(
                f"TAKEBACK_BANK_TIMEOUT must be a number of seconds, not {raw_timeout!r}"
            ) from None
        return cls(
            home=root,
            bank_dir=Path(bank) if bank is not None else root / "bank",
            limits=limits if limits is not None else ImageLimits.from_env(dict(env)),
            bank_timeout=timeout,
        )

    @property
    def keys_dir(self) -> Path:
        """Signing keys for Content Credentials (``takeback keys init`` layout)."""
        return self.home / "keys"

    @property
    def data_dir(self) -> Path:
        """The app's own files: the remembered originals and the signed manifests."""
        return self.home / "app"

    @property
    def originals_file(self) -> Path:
        """Where the originals are on this computer (only if the person asked)."""
        return self.data_dir / "originals.json"

    @property
    def credentials_dir(self) -> Path:
        """Content Credentials manifests made by the app, one ``<sha256>.c2pa`` per photo."""
        return self.data_dir / "credentials"

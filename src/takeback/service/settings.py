"""Typed settings of ``takeback serve``, validated at start-up.

Every field can be set in the environment with the ``TAKEBACK_`` prefix
(``TAKEBACK_PORT=9000``, ``TAKEBACK_BANKS='{"partner": "postgresql://..."}'``);
command-line options override the environment. :func:`get_settings` reads
them once; tests build :class:`ServiceSettings` directly and hand it to
:func:`~takeback.service.app.create_app`.

Banks
-----
A bank is a :class:`~takeback.bank.store.Store`: a directory (SQLite) or a
``postgresql://`` URL (its ``takeback`` schema). The service serves one bank per
name: ``default`` lives at :attr:`ServiceSettings.bank` (the CLI's bank unless
set), more are named in :attr:`ServiceSettings.banks`. API keys are scoped to
bank names.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import socket
from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ..bank.open import is_postgres_url, redact_url
from ..bank.store import default_bank_dir
from ..fingerprint.types import PDQ_MATCH_THRESHOLD, PDQ_MIN_QUALITY
from ..imageio import ImageLimits

__all__ = [
    "BANK_NAME_PATTERN",
    "DEFAULT_BANK",
    "SERVICE_DB_NAME",
    "Role",
    "ServiceSettings",
    "bind_is_public",
    "check_bind",
    "get_settings",
]

#: Name of the bank at :attr:`ServiceSettings.bank`.
DEFAULT_BANK: Final = "default"
#: What a bank name may look like (it appears in URLs and key scopes).
BANK_NAME_PATTERN: Final = r"^[a-z0-9][a-z0-9_-]{0,62}$"
#: File name of the SQLite service database inside a SQLite bank's directory.
SERVICE_DB_NAME: Final = "service.sqlite3"

Role = Literal["all", "matcher", "submitter"]
_BANK_NAME = re.compile(BANK_NAME_PATTERN)


class ServiceSettings(BaseSettings):
    """Settings of the hash bank and matching service.

    Attributes
    ----------
    host, port : str, int
        Where to listen. Anything but a loopback address is refused unless
        ``behind_tls_proxy`` or ``insecure_public`` is set (:func:`check_bind`).
    bank : str or None
        Location of the bank named ``default``: a directory or a
        ``postgresql://`` URL (default: the CLI's bank, ``$TAKEBACK_HOME/bank``).
    banks : dict of str to str
        More banks by name (``TAKEBACK_BANKS`` as a JSON object).
    role : {"all", "matcher", "submitter"}
        ``matcher`` serves matching and the change feed from in-memory indexes;
        ``submitter`` serves submission, withdrawal, the feed and key
        administration without loading indexes; ``all`` does both.
    service_db : str or None
        Where API keys and the audit log live: a SQLite file or a
        ``postgresql://`` URL (schema ``takeback_service``). Default:
        ``service.sqlite3`` in the default bank's directory, or the default
        bank's own PostgreSQL database.
    behind_tls_proxy, insecure_public : bool
        Allow a non-loopback bind: behind a TLS-terminating proxy (also trusts
        its ``X-Forwarded-*`` headers from ``forwarded_allow_ips``), or in plain
        HTTP on purpose.
    match_threshold, max_threshold : int
        Default PDQ threshold of a match request, and the largest a request may ask.
    min_quality : int
        PDQ quality below which hashes are neither indexed nor searched.
    index_kind : str
        ``auto``, ``mih`` or ``bruteforce`` (see :mod:`takeback.bank.index`).
    index_threads : int
        Threads of a multi-index hashing index (for builds and batched queries).
    compact_after : int
        Pending index changes that trigger a background rebuild.
    poll_interval : float
        Seconds between polls of a bank's change feed (PostgreSQL also wakes
        replicas with ``LISTEN``/``NOTIFY``; polling is then the fallback).
    ready_max_lag : float
        ``/readyz`` fails when a replica has not synchronised for this long.
    workers : int
        Server processes sharing the listening socket, each holding its own
        indexes and following the change feed (0: one per CPU core, at most 4).
    startup_wait : float
        With several workers, how long a worker waits for its indexes before it
        accepts connections (so that a request never reaches a worker still
        loading while another one already answers ``/readyz``); after this it
        serves anyway and answers ``503 index_loading`` until loaded.
    fast_match : bool
        Answer common fingerprint match requests on the hot path of
        :mod:`takeback.service.fastmatch` (same answers, a fraction of the CPU).
    access_log : bool
        Log every request (uvicorn's access log). Off by default: the audit log
        records every request that carries a key, and a log line per match
        costs about a tenth of the request.
    max_request_bytes, max_upload_bytes : int
        Largest request body (JSON), and largest image upload.
    max_pixels : int
        Largest declared pixel count of an uploaded image.
    max_batch : int
        Most entries (or ids) in one submission (or withdrawal).
    hash_workers : int
        Processes hashing uploads (0: up to 4, one per core).
    hash_queue : int
        Uploads being hashed or waiting, per worker, before ``503 busy``.
    warm_up : bool
        Start the hashing processes at start-up rather than on the first upload.
    rate_limit_per_second, rate_limit_burst : float, int
        Token bucket per API key: refill rate and size.
    key_refresh_seconds : float
        How often the key ring is reloaded (revocations made on other nodes).
    audit_flush_seconds : float
        How often queued audit records are written.
    label_cache_size : int
        Entry labels kept in memory per bank (matches need them).
    bank_timeout : float
        Seconds to wait for another writer's lock on a bank (the CLI's
        ``TAKEBACK_BANK_TIMEOUT``).
    """

    model_config = SettingsConfigDict(
        env_prefix="TAKEBACK_", extra="ignore", validate_default=True, frozen=True
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    bank: str | None = None
    banks: dict[str, str] = Field(default_factory=dict)
    role: Role = "all"
    service_db: str | None = None
    behind_tls_proxy: bool = False
    insecure_public: bool = False
    forwarded_allow_ips: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.1"]
    )

    match_threshold: int = Field(default=PDQ_MATCH_THRESHOLD, ge=0, le=256)
    max_threshold: int = Field(default=PDQ_MATCH_THRESHOLD, ge=0, le=256)
    min_quality: int = Field(default=PDQ_MIN_QUALITY, ge=0, le=100)
    index_kind: Literal["auto", "mih", "bruteforce"] = "auto"
    index_threads: int = Field(default=1, ge=1, le=256)
    compact_after: int = Field(default=16_384, ge=1)
    poll_interval: float = Field(default=0.5, gt=0, le=60)
    ready_max_lag: float = Field(default=15.0, gt=0)

    workers: int = Field(default=0, ge=0, le=64)
    startup_wait: float = Field(default=120.0, ge=0)
    fast_match: bool = True
    access_log: bool = False

    max_request_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    max_upload_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    max_pixels: int = Field(default=50_000_000, ge=64 * 64)
    max_batch: int = Field(default=1000, ge=1, le=100_000)
    hash_workers: int = Field(default=0, ge=0, le=256)
    hash_queue: int = Field(default=8, ge=1)
    warm_up: bool = True

    rate_limit_per_second: float = Field(default=50.0, gt=0)
    rate_limit_burst: int = Field(default=100, ge=1)
    key_refresh_seconds: float = Field(default=5.0, gt=0)
    audit_flush_seconds: float = Field(default=0.2, gt=0)
    label_cache_size: int = Field(default=100_000, ge=0)
    bank_timeout: float = Field(default=5.0, ge=0)

    @field_validator("forwarded_allow_ips", mode="before")
    @classmethod
    def _split_ips(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("banks")
    @classmethod
    def _check_bank_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name, location in value.items():
            if not _BANK_NAME.match(name):
                raise ValueError(
                    f"bank name {name!r} is not allowed: use 1-63 lower-case letters, digits, "
                    "'-' or '_', starting with a letter or digit"
                )
            if not location:
                raise ValueError(f"bank {name!r} has an empty location")
        return value

    @model_validator(mode="after")
    def _check(self) -> ServiceSettings:
        if self.match_threshold > self.max_threshold:
            raise ValueError(
                f"match_threshold {self.match_threshold} is above max_threshold "
                f"{self.max_threshold}: lower it or raise TAKEBACK_MAX_THRESHOLD"
            )
        if DEFAULT_BANK in self.banks and self.bank is not None:
            raise ValueError(
                f"the bank {DEFAULT_BANK!r} is given twice (bank and banks); give it once"
            )
        ImageLimits(max_pixels=self.max_pixels, max_file_bytes=self.max_upload_bytes)
        return self

    # -- derived values ----------------------------------------------------
    def bank_locations(self) -> dict[str, str]:
        """Every served bank: name -> directory or URL, ``default`` first."""
        locations: dict[str, str] = {}
        if DEFAULT_BANK not in self.banks:
            locations[DEFAULT_BANK] = self.bank or os.fspath(default_bank_dir())
        locations.update(self.banks)
        return locations

    def service_db_location(self) -> str:
        """Where keys and the audit log live (see :attr:`service_db`)."""
        if self.service_db:
            return self.service_db
        first = next(iter(self.bank_locations().values()))
        if is_postgres_url(first):
            return first
        return os.fspath(Path(first) / SERVICE_DB_NAME)

    def image_limits(self) -> ImageLimits:
        """The :class:`~takeback.imageio.ImageLimits` applied to uploads."""
        return ImageLimits(max_pixels=self.max_pixels, max_file_bytes=self.max_upload_bytes)

    def worker_count(self) -> int:
        """Processes hashing uploads (per server process)."""
        return self.hash_workers or _cores()

    def server_processes(self) -> int:
        """Server processes (:attr:`workers`, or one per core)."""
        return self.workers or _cores()

    @property
    def serves_matching(self) -> bool:
        """Whether this node loads indexes and answers match requests."""
        return self.role in ("all", "matcher")

    @property
    def serves_writes(self) -> bool:
        """Whether this node accepts submissions, withdrawals and key administration."""
        return self.role in ("all", "submitter")

    def describe_banks(self) -> dict[str, str]:
        """Bank locations with passwords masked, for logs."""
        return {name: redact_url(loc) for name, loc in self.bank_locations().items()}


def _cores(most: int = 4) -> int:
    """CPU cores this process may run on, at most ``most``."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(most, cpus or 1))


@functools.lru_cache(maxsize=1)
def get_settings() -> ServiceSettings:
    """The settings from the environment, read once (tests build their own)."""
    return ServiceSettings()


def bind_is_public(host: str) -> bool:
    """Whether listening on ``host`` accepts connections from other machines.

    Examples
    --------
    >>> bind_is_public("127.0.0.1"), bind_is_public("::1"), bind_is_public("0.0.0.0")
    (False, False, True)
    """
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return True  # unknown: assume the worst
    return any(
        not ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos
    )


def check_bind(settings: ServiceSettings) -> str | None:
    """Why binding to ``settings.host`` is refused, or ``None`` when it is allowed."""
    if not bind_is_public(settings.host):
        return None
    if settings.behind_tls_proxy or settings.insecure_public:
        return None
    return (
        f"refusing to listen on {settings.host}: API keys would cross the network in clear. "
        "Put a TLS-terminating proxy in front and pass --behind-tls-proxy "
        "(TAKEBACK_BEHIND_TLS_PROXY=1), or pass --insecure-public if you really mean it; "
        "or listen on 127.0.0.1"
    )

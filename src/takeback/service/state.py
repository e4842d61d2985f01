"""Everything a running service holds, built from the settings, started and stopped
by the app's lifespan."""

from __future__ import annotations

import contextlib
import logging
import threading
import time

from ..errors import TakeBackError
from .audit import AuditLog
from .auth import KeyRing, KeyStore
from .banks import BankRuntime
from .db import ServiceDb, open_service_db
from .errors import ApiError
from .hashing import UploadHasher
from .ratelimit import RateLimiter
from .settings import ServiceSettings

__all__ = ["ServiceState"]

_LOG = logging.getLogger("takeback.service")


class ServiceState:
    """The banks, keys, audit log, rate limiter and hashing pool of one process.

    Parameters
    ----------
    settings : ServiceSettings
    """

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.banks: dict[str, BankRuntime] = {}
        self.db: ServiceDb | None = None
        self.keys: KeyStore | None = None
        self.keyring: KeyRing | None = None
        self.audit: AuditLog | None = None
        self.limiter = RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
        self.hasher: UploadHasher | None = None
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None

    def start(self) -> None:
        """Open the service database and every bank; start replicas and background threads.

        Raises
        ------
        TakeBackError
            A bank or the service database cannot be opened (the service does
            not start).
        """
        s = self.settings
        try:
            self.db = open_service_db(s.service_db_location(), busy_timeout=s.bank_timeout)
            self.keys = KeyStore(self.db)
            self.keyring = KeyRing(self.keys)
            self.keyring.reload()
            self.audit = AuditLog(self.db, flush_seconds=s.audit_flush_seconds)
            self.audit.start()
            for name, location in s.bank_locations().items():
                runtime = BankRuntime(name, location, s)
                self.banks[name] = runtime
                runtime.open()
        except BaseException:
            self.stop()
            raise
        if s.serves_matching:
            self.hasher = UploadHasher(s.worker_count(), s.hash_queue, s.image_limits())
            if s.warm_up:
                threading.Thread(
                    target=self._warm_up, args=(self.hasher,), name="takeback-warm-up", daemon=True
                ).start()
        self._refresher = threading.Thread(
            target=self._refresh_keys, name="takeback-keyring", daemon=True
        )
        self._refresher.start()
        _LOG.info(
            "serving banks %s as %s; keys and audit log in %s",
            s.describe_banks(),
            s.role,
            self.db.location,
        )

    def _warm_up(self, hasher: UploadHasher) -> None:
        # After the indexes: starting the hashing processes competes for the CPU.
        self.wait_ready(self.settings.startup_wait)
        with contextlib.suppress(ApiError):  # stopped meanwhile
            hasher.warm_up()

    def _refresh_keys(self) -> None:
        while not self._stop.wait(self.settings.key_refresh_seconds):
            if self.keyring is None:
                return
            try:
                self.keyring.reload()
            except TakeBackError as exc:
                _LOG.warning("cannot reload the API keys (keeping the last ones): %s", exc.message)

    def ready(self) -> bool:
        """Every bank open and, on a matching node, its index loaded and in sync."""
        return bool(self.banks) and all(b.ready() for b in self.banks.values())

    def wait_ready(self, timeout: float) -> bool:
        """Block until :meth:`ready` (True), or ``timeout`` seconds (False)."""
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self._stop.wait(min(0.05, max(0.0, deadline - time.monotonic()))):
                return False
            if time.monotonic() >= deadline:
                return False
        return True

    def stop(self) -> None:
        """Stop everything; idempotent."""
        self._stop.set()
        if self._refresher is not None:
            self._refresher.join(timeout=10)
            self._refresher = None
        if self.hasher is not None:
            self.hasher.close()
            self.hasher = None
        for runtime in self.banks.values():
            runtime.close()
        self.banks = {}
        if self.audit is not None:
            self.audit.close()
            self.audit = None
        if self.db is not None:
            self.db.close()
            self.db = None

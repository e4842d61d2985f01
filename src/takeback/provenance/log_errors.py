"""Errors of the registration log, under the one :class:`TakeBackError` tree.

::

    TakeBackError
    ├── InputError
    │   └── ProofFormatError          malformed_proof      an unparsable proof, checkpoint or key
    └── BankError
        └── LogError                  log_error            the log cannot be used
            ├── LogNotFoundError      log_missing          no log in that bank yet
            ├── LogCorruptError       log_corrupt          the log database or key is damaged
            ├── LogEntryNotFoundError log_entry_missing    no entry with that index
            └── TimestampError        timestamp_failed     the timestamp authority failed

A proof that does not verify is not an error: it is a verdict
(:class:`~takeback.provenance.log.Verdict`). These errors are for things that
stop a command: a missing log, an unreadable file, a broken authority.
"""

from __future__ import annotations

from ..errors import BankError, InputError

__all__ = [
    "LogCorruptError",
    "LogEntryNotFoundError",
    "LogError",
    "LogNotFoundError",
    "ProofFormatError",
    "TimestampError",
]


class ProofFormatError(InputError):
    """A proof file, checkpoint, note or key string does not have the expected form."""

    code = "malformed_proof"


class LogError(BankError):
    """The registration log cannot be used."""

    code = "log_error"


class LogNotFoundError(LogError):
    """The bank has no registration log yet."""

    code = "log_missing"


class LogCorruptError(LogError):
    """The log database or its signing key is damaged or not TakeBack's."""

    code = "log_corrupt"


class LogEntryNotFoundError(LogError):
    """No log entry with that index."""

    code = "log_entry_missing"


class TimestampError(LogError):
    """The RFC 3161 timestamp authority could not be reached or gave a bad answer."""

    code = "timestamp_failed"

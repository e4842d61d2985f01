"""TakeBack: find, prove and take down doctored copies of a person's photos.

The public API (everything else is an implementation detail)::

    from takeback import fingerprint_file, SqliteStore, BankEntry, Matcher

    fp = fingerprint_file("me.jpg")                  # hashes, never pixels
    with SqliteStore.create("bank") as store:
        store.add([BankEntry.from_fingerprint(fp, label="me.jpg")])
        with Matcher(store) as matcher:
            result = matcher.match(fingerprint_file("suspect.jpg"))
"""

from .bank.matcher import Match, Matcher, MatchResult
from .bank.model import AddResult, BankEntry, BankStats, Change
from .bank.store import SqliteStore, Store, default_bank_dir
from .errors import TakeBackError
from .fingerprint import (
    PDQ_MATCH_THRESHOLD,
    PDQ_MIN_QUALITY,
    Fingerprint,
    PdqHash,
    fingerprint_bytes,
    fingerprint_file,
)
from .imageio import ImageLimits

__version__ = "0.1.0"

__all__ = [
    "PDQ_MATCH_THRESHOLD",
    "PDQ_MIN_QUALITY",
    "AddResult",
    "BankEntry",
    "BankStats",
    "Change",
    "Fingerprint",
    "ImageLimits",
    "Match",
    "MatchResult",
    "Matcher",
    "PdqHash",
    "SqliteStore",
    "Store",
    "TakeBackError",
    "__version__",
    "default_bank_dir",
    "fingerprint_bytes",
    "fingerprint_file",
]

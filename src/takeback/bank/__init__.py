"""The hash bank: store of record, exact Hamming index, matcher, exchange formats."""

from .matcher import Match, Matcher, MatchResult
from .model import AddResult, BankEntry, BankStats, Change
from .store import SqliteStore, Store, default_bank_dir

__all__ = [
    "AddResult",
    "BankEntry",
    "BankStats",
    "Change",
    "Match",
    "MatchResult",
    "Matcher",
    "SqliteStore",
    "Store",
    "default_bank_dir",
]

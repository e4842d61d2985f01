"""Proving the original: C2PA Content Credentials and a tamper-evident registration log."""

__all__: list[str] = []

"""The HTTP routes, one module per domain: health, hashes, match, changes, admin."""

__all__: list[str] = []

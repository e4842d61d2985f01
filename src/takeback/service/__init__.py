"""``takeback serve``: the hash bank and matching service (FastAPI).

Layered, not domain-split: :mod:`.routers` parse requests and call the bank
runtime (:mod:`.banks`), which wires the library (:mod:`takeback.bank`,
:mod:`takeback.fingerprint`) together; :mod:`.auth`, :mod:`.ratelimit`,
:mod:`.audit` and :mod:`.limits` guard the door; :mod:`.replica` keeps each
bank's index in memory and in step with its change feed.
"""

from .app import create_app
from .settings import ServiceSettings, get_settings

__all__ = ["ServiceSettings", "create_app", "get_settings"]

"""``takeback app``: a local web page for people, backed by the same library.

The page runs on 127.0.0.1 only, with no account and no upload anywhere: the
browser sends files to TakeBack on the same computer, which keeps fingerprints
(never photos) in the person's bank. Three steps: register photos, check a
suspect picture against its original, make an evidence package.

::

    from takeback.app import AppConfig, LocalServer, create_app

    with LocalServer(create_app(AppConfig.from_env())) as server:
        print(server.url)

Routes and privacy choices: :mod:`takeback.app.server` and ``docs/app.md``.
"""

from .config import AppConfig
from .run import LocalServer
from .server import create_app

__all__ = ["AppConfig", "LocalServer", "create_app"]

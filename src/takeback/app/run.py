"""Run the local app with uvicorn on 127.0.0.1, on a free port unless told otherwise."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

__all__ = ["LocalServer"]


class LocalServer:
    """uvicorn serving an ASGI app on ``127.0.0.1``, in this thread or a background one.

    The socket is bound when the object is made, so :attr:`url` is known (and
    the port reserved) before the server starts.

    Parameters
    ----------
    app : ASGI app
        Usually :func:`takeback.app.create_app`.
    port : int
        0 (default) for a free port chosen by the system.

    Examples
    --------
    >>> from takeback.app import create_app  # doctest: +SKIP
    >>> with LocalServer(create_app()) as server:  # doctest: +SKIP
    ...     print(server.url)
    http://127.0.0.1:40123/
    """

    host = "127.0.0.1"

    def __init__(self, app: Any, *, port: int = 0) -> None:
        import uvicorn

        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._socket.bind((self.host, port))
        except OSError:
            self._socket.close()
            raise
        self.port: int = self._socket.getsockname()[1]
        config = uvicorn.Config(
            app,
            host=self.host,
            port=self.port,
            log_level="warning",
            access_log=False,
            server_header=False,
            lifespan="off",
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The page's address, e.g. ``http://127.0.0.1:40123/``."""
        return f"http://{self.host}:{self.port}/"

    @property
    def started(self) -> bool:
        """Whether the server accepts connections."""
        return bool(self._server.started)

    def run(self) -> None:
        """Serve in this thread until interrupted (Ctrl+C) or :meth:`stop` is called."""
        try:
            self._server.run(sockets=[self._socket])
        finally:
            self._socket.close()

    def start(self, *, timeout: float = 20.0) -> None:
        """Serve in a background thread; return once it accepts connections.

        Raises
        ------
        RuntimeError
            The server did not start within ``timeout`` seconds.
        """
        self._thread = threading.Thread(target=self.run, name="takeback-app", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the local server did not start on {self.url}")
            time.sleep(0.02)

    def stop(self, *, timeout: float = 10.0) -> None:
        """Ask the server to finish and wait for it; idempotent."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._socket.close()

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

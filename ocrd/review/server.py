"""Serving the review page with uvicorn: in the foreground for `ocrd review`, or in a thread
beside the daemon when ``review_port`` is set."""

from __future__ import annotations

import os
import threading

import uvicorn
from starlette.applications import Starlette

from ocrd.config import Settings
from ocrd.review.app import create_app
from ocrd.review.security import TOKEN_ENV, access_for
from ocrd.store import Store

DEFAULT_PORT = 8765
DEFAULT_HOST = "127.0.0.1"


def build_app(store: Store, settings: Settings, *, host: str = DEFAULT_HOST) -> Starlette:
    """The application for ``host``; AccessError when that host needs a token and has none."""
    access = access_for(host, os.environ.get(TOKEN_ENV))
    return create_app(store, access, max_pixels=settings.max_pixels, pdf_dpi=settings.pdf_dpi)


class ReviewServer:
    """uvicorn serving the review page; ``start()`` runs it in a daemon thread."""

    def __init__(self, app: Starlette, host: str, port: int) -> None:
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", access_log=False, lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.url = f"http://{host if ':' not in host else f'[{host}]'}:{port}/"
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        self.server.run()

    def start(self, timeout: float = 10.0) -> None:
        """Serve in a thread; returns once the port is listening (OSError if it cannot be)."""
        self.server.config.install_signal_handlers = False  # the daemon owns the signals
        self._thread = threading.Thread(target=self.server.run, name="review", daemon=True)
        self._thread.start()
        deadline = threading.Event()
        waited = 0.0
        while not self.server.started and self._thread.is_alive() and waited < timeout:
            deadline.wait(0.05)
            waited += 0.05
        if not self.server.started:
            raise OSError(f"the review page could not listen on {self.url}")

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)


def serve_beside_daemon(store: Store, settings: Settings) -> ReviewServer:
    """The review page on 127.0.0.1:``review_port`` in a thread of the daemon (its own store
    connection pool, the daemon's settings). Raises OSError when the port cannot be had."""
    server = ReviewServer(build_app(store, settings), DEFAULT_HOST, settings.review_port)
    server.start()
    return server

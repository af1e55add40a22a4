"""Command-line interface. Each module registers its commands on the shared `app`:

- store.py:  process, results, status, config, db   (store / foundation)
- show.py:   show                                    (one document)
- vision.py: read, inspect                           (vision)
- daemon.py: watch, retry                            (service)
"""

from __future__ import annotations

from ocrd.cli import daemon, show, store, vision  # noqa: F401  (registers commands)
from ocrd.cli.app import app


def main() -> None:
    app()

"""How the daemon talks to systemd (sd_notify) and hears from it (signals)."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

import sdnotify

if TYPE_CHECKING:
    from ocrd.service.daemon import Daemon


def systemd_notifier() -> sdnotify.SystemdNotifier:
    """READY/STATUS/WATCHDOG/STOPPING messages; a no-op outside systemd (no NOTIFY_SOCKET)."""
    return sdnotify.SystemdNotifier()


def install_signal_handlers(daemon: Daemon) -> None:
    """SIGTERM/SIGINT: graceful stop; SIGHUP: reload settings (in the main loop)."""
    signal.signal(signal.SIGTERM, lambda *_: daemon.request_stop())
    signal.signal(signal.SIGINT, lambda *_: daemon.request_stop())
    signal.signal(signal.SIGHUP, lambda *_: (daemon.reload_requested.set(), daemon.wake.set()))

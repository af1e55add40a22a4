"""What the daemon reports about itself: counters, the STATUS= line, the /metrics endpoint."""

from __future__ import annotations

import http.server
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ocrd.service.daemon import Daemon

log = logging.getLogger("ocrd.service")


@dataclass
class Counters:
    started_at: float = field(default_factory=time.monotonic)
    done: int = 0
    failed: int = 0
    duplicates: int = 0
    pages: int = 0
    registered: int = 0
    recent: deque = field(default_factory=lambda: deque(maxlen=2000))  # finish times
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, outcome: str, pages: int = 0) -> None:
        with self.lock:
            setattr(self, outcome, getattr(self, outcome) + 1)
            self.pages += pages
            if outcome in ("done", "failed"):
                self.recent.append(time.monotonic())

    def rate(self, window: float = 60.0) -> float:
        """Documents finished per second over the last `window` seconds."""
        now = time.monotonic()
        with self.lock:
            recent = sum(1 for t in self.recent if now - t <= window)
        return recent / min(window, max(now - self.started_at, 1e-9))


def status_line(daemon: Daemon) -> str:
    c = daemon.counters
    pending = daemon.last_counts.get("pending", 0)
    inbox = daemon.intake.inbox
    trouble = [
        *(["database unavailable"] if daemon.health.down else []),
        *([f"{len(inbox.unreadable)} unreadable"] if inbox.unreadable else []),
        *([f"{len(inbox.turned_away)} not regular files"] if inbox.turned_away else []),
    ]
    return (
        f"{pending} pending, {daemon.in_flight_count} in flight, "
        f"{inbox.watching} settling; this run: {c.done} done, {c.failed} failed, "
        f"{c.duplicates} duplicates; {c.rate():.1f} files/s" + "".join(f"; {t}" for t in trouble)
    )


def metrics_text(daemon: Daemon) -> str:
    c = daemon.counters
    lines = [
        "# HELP ocrd_documents_total Documents finished by this process, by outcome.",
        "# TYPE ocrd_documents_total counter",
        f'ocrd_documents_total{{outcome="done"}} {c.done}',
        f'ocrd_documents_total{{outcome="failed"}} {c.failed}',
        f'ocrd_documents_total{{outcome="duplicate"}} {c.duplicates}',
        "# HELP ocrd_pages_total Pages read by this process.",
        "# TYPE ocrd_pages_total counter",
        f"ocrd_pages_total {c.pages}",
        "# HELP ocrd_in_flight Documents being read by this process now.",
        "# TYPE ocrd_in_flight gauge",
        f"ocrd_in_flight {daemon.in_flight_count}",
        "# HELP ocrd_settling Inbox files waiting to settle.",
        "# TYPE ocrd_settling gauge",
        f"ocrd_settling {daemon.intake.inbox.watching}",
        "# HELP ocrd_unreadable Settled inbox files that do not open (permission...).",
        "# TYPE ocrd_unreadable gauge",
        f"ocrd_unreadable {len(daemon.intake.inbox.unreadable)}",
        "# HELP ocrd_database_up 0 while the database is unreachable.",
        "# TYPE ocrd_database_up gauge",
        f"ocrd_database_up {0 if daemon.health.down else 1}",
        "# HELP ocrd_memory_budget_bytes Bytes of the page memory budget held now.",
        "# TYPE ocrd_memory_budget_bytes gauge",
        f"ocrd_memory_budget_bytes {daemon.budget.used}",
        "# HELP ocrd_queue Documents in the store by status (all workers).",
        "# TYPE ocrd_queue gauge",
    ]
    lines += [f'ocrd_queue{{status="{s}"}} {n}' for s, n in sorted(daemon.last_counts.items())]
    for batcher in (daemon.reader.digits, daemon.reader.lines):
        kind = batcher.name.split("-")[0]
        s = batcher.stats
        lines += [
            f'ocrd_batches_total{{model="{kind}"}} {s.batches}',
            f'ocrd_batch_items_total{{model="{kind}"}} {s.items}',
            f'ocrd_inference_seconds_total{{model="{kind}"}} {s.busy_seconds:.3f}',
        ]
    return "\n".join(lines) + "\n"


class _MetricsHandler(http.server.BaseHTTPRequestHandler):
    daemon_ref: Daemon | None = None

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        if self.path.split("?")[0] not in ("/metrics", "/"):
            self.send_error(404)
            return
        body = metrics_text(self.daemon_ref).encode() if self.daemon_ref else b""
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        log.debug("metrics: " + format, *args)


def start_metrics_server(daemon: Daemon, port: int) -> http.server.ThreadingHTTPServer:
    handler = type("MetricsHandler", (_MetricsHandler,), {"daemon_ref": daemon})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server

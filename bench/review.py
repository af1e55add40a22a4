"""Benchmark: the review page with 10,000 fields waiting, on SQLite and PostgreSQL.

Fills a fresh database with 2,200 read A4 pages (300 dpi PNG files on disk, 10 fields each):
1,000 pages whose fields all wait for review (10,000 queue items), 1,000 pages read sure and
200 pages already reviewed. Then serves the real application with uvicorn on 127.0.0.1 and
times, over HTTP with one keep-alive connection as a browser would:

- queue load: GET /queue (the HTML page with the count and the first items);
- per item: what a reviewer's keystroke costs, with the page's own request pattern: POST the
  decision, GET the next batch of items when 3 are left (/api/queue?after=...), GET the next
  item's crop (cut from its page file; the pages of listed items are decoded in the background).

Every item's page is a different file, so each tenth crop decodes a whole page (cold).

    python bench/review.py                      # SQLite
    python bench/review.py --start-postgres     # and a throwaway PostgreSQL server
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import cv2
import numpy as np
from sqlalchemy import insert, text

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ocrd.config import load_settings  # noqa: E402
from ocrd.review import ReviewServer, build_app  # noqa: E402
from ocrd.review.security import TOKEN_ENV  # noqa: E402
from ocrd.store import Document, Result, Review, open_store  # noqa: E402
from ocrd.store.engine import Store, create_store_engine  # noqa: E402

FIELDS_PER_PAGE = 10
WAITING_PAGES, SURE_PAGES, REVIEWED_PAGES = 1000, 1000, 200
PAGE_SHAPE = (3508, 2480)  # A4 at 300 dpi
SOURCE_PAGES = 8  # distinct page images, hard-linked under one path per document
TOKEN = "bench-review-token-0123456789"
DIGITS = [{"digit": str(d), "confidence": 0.6, "box": [0, 0, 10, 10], "runner_up": "7",
           "runner_up_confidence": 0.3} for d in range(5)]  # fmt: skip


COLUMNS = [  # (figure, title, width)
    ("engine", "engine", 11), ("waiting", "waiting", 8), ("items", "items", 6),
    ("queue_load_ms", "queue load", 11), ("item_mean_ms", "item mean", 10),
    ("item_p95_ms", "item p95", 9), ("item_max_ms", "item max", 9),
    ("crop_mean_ms", "crop mean", 10), ("crop_p95_ms", "crop p95", 9),
    ("decision_mean_ms", "decision", 9),
]  # fmt: skip


def field_box(k: int) -> tuple[int, int, int, int]:
    return 300, 300 + 300 * k, 900, 140


def write_pages(folder: Path) -> list[Path]:
    rng = np.random.default_rng(1)
    paths = []
    for n in range(SOURCE_PAGES):
        page = np.full(PAGE_SHAPE, 255, np.uint8)
        page -= rng.integers(0, 18, PAGE_SHAPE, dtype=np.uint8)  # scanner noise: real PNG sizes
        for k in range(FIELDS_PER_PAGE):
            x, y, w, h = field_box(k)
            cv2.rectangle(page, (x, y), (x + w, y + h), 0, 3)
            cv2.putText(page, f"{n}{k}{7 * k % 10}42", (x + 30, y + 110),
                        cv2.FONT_HERSHEY_SIMPLEX, 4, 0, 9)  # fmt: skip
        path = folder / f"source-{n}.png"
        cv2.imwrite(str(path), page)
        paths.append(path)
    return paths


def fill(store: Store, folder: Path) -> int:
    """Documents, results and reviews; returns the number of waiting fields."""
    sources = write_pages(folder)
    now = datetime.now(UTC)
    pages = WAITING_PAGES + SURE_PAGES + REVIEWED_PAGES
    documents, results, reviews = [], [], []
    for i in range(1, pages + 1):
        path = folder / f"scan-{i:05d}.png"
        os.link(sources[i % SOURCE_PAGES], path)
        at = now - timedelta(seconds=pages - i)
        documents.append({"id": i, "path": str(path), "original_name": path.name,
                          "sha256": f"{i:064x}", "size": 1, "media_type": "image/png",
                          "pages": 1, "status": "done", "attempts": 1, "received_at": at,
                          "finished_at": at})  # fmt: skip
        marked = i <= WAITING_PAGES or i > WAITING_PAGES + SURE_PAGES
        for k in range(FIELDS_PER_PAGE):
            x, y, w, h = field_box(k)
            results.append({"id": len(results) + 1, "document_id": i, "page": 1, "x": x,
                            "y": y, "w": w, "h": h, "text": "12345", "confidence": 0.6,
                            "kind": "handwritten", "model": "bench@1", "digits": DIGITS,
                            "needs_review": marked, "template": "bench", "field": f"f{k}",
                            "created_at": at})  # fmt: skip
            if i > WAITING_PAGES + SURE_PAGES:
                reviews.append({"result_id": len(results), "status": "accepted", "text": "12345",
                                "reviewer": "bench", "reviewed_at": now})  # fmt: skip
    with store.session() as session:
        session.execute(insert(Document), documents)
        session.execute(insert(Result), results)
        session.execute(insert(Review), reviews)
    if store.dialect == "postgresql":
        with store.engine.begin() as connection:
            for table in ("documents", "results"):
                connection.execute(
                    text(f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM {table}))")
                )
            connection.execute(text("ANALYZE"))
    return WAITING_PAGES * FIELDS_PER_PAGE


class Client:
    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"Authorization": f"Bearer {TOKEN}", "X-OCRD-Reviewer": "bench"}

    def request(self, method: str, path: str, body: dict | None = None) -> bytes:
        headers = dict(self.headers)
        payload = None
        if body is not None:
            payload = urlencode(body)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.connection.request(method, path, body=payload, headers=headers)
        response = self.connection.getresponse()
        data = response.read()
        if response.status != 200:
            raise SystemExit(f"{method} {path}: {response.status} {data[:200]!r}")
        return data


def run(url: str, folder: Path, items: int) -> dict[str, object]:
    store = open_store(url)
    waiting = fill(store, folder)
    os.environ[TOKEN_ENV] = TOKEN
    port = _free_port()
    server = ReviewServer(build_app(store, load_settings()), "127.0.0.1", port)
    server.start()
    client = Client(port)
    try:
        loads = []
        for _ in range(5):
            started = time.perf_counter()
            page = client.request("GET", "/queue")
            loads.append(time.perf_counter() - started)
        assert f">{waiting}</span> field(s) waiting".encode() in page, "queue count"
        # As the page does: items come in batches of 5, the next batch is asked for when 3
        # are left; after each decision the next item's crop is fetched.
        queue = json.loads(client.request("GET", "/api/queue?limit=5"))["items"]
        client.request("GET", queue[0]["crop_url"])
        cycles, crops, posts = [], [], []
        for _ in range(items):
            started = time.perf_counter()
            current = queue.pop(0)
            client.request("POST", f"/api/results/{current['id']}/review", {"action": "accept"})
            posts.append(time.perf_counter() - started)
            if len(queue) <= 3:
                batch = json.loads(client.request("GET", f"/api/queue?after={queue[-1]['id']}"))
                queue.extend(batch["items"])
            crop_started = time.perf_counter()
            client.request("GET", queue[0]["crop_url"])
            done = time.perf_counter()
            cycles.append(done - started)
            crops.append(done - crop_started)
        left = json.loads(client.request("GET", "/api/queue?limit=1"))["count"]
        assert left == waiting - items, "every decision left the queue"
    finally:
        client.connection.close()
        server.stop()
        store.dispose()
    ms = lambda values, q: round(1000 * statistics.quantiles(values, n=100)[q - 1], 1)  # noqa: E731
    return {
        "engine": store.dialect, "waiting": waiting, "items": items,
        "queue_load_ms": round(1000 * statistics.median(loads), 1),
        "item_mean_ms": round(1000 * statistics.mean(cycles), 1),
        "item_p95_ms": ms(cycles, 95), "item_max_ms": round(1000 * max(cycles), 1),
        "crop_mean_ms": round(1000 * statistics.mean(crops), 1),
        "crop_p95_ms": ms(crops, 95),
        "decision_mean_ms": round(1000 * statistics.mean(posts), 1),
    }  # fmt: skip


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=300, help="items to clear per engine")
    parser.add_argument("--postgres-url", help="also run against this (scratch!) PostgreSQL DB")
    parser.add_argument("--start-postgres", action="store_true",
                        help="also run against a throwaway PostgreSQL server")  # fmt: skip
    args = parser.parse_args()
    server = None
    if args.start_postgres:
        from tests.conftest import PostgresServer, find_postgres_bin

        server = PostgresServer(find_postgres_bin())
        server.start()
        args.postgres_url = server.create_database("bench_review")
    workdir = Path(tempfile.mkdtemp(prefix="ocrd-bench-review-"))
    targets = [("sqlite", f"sqlite:///{workdir / 'review.db'}")]
    if args.postgres_url:
        targets.append(("postgresql", args.postgres_url))
    print("".join(f"{title:>{width}}" for _, title, width in COLUMNS) + "   (ms)")
    try:
        for name, url in targets:
            folder = workdir / name
            folder.mkdir()
            f = run(url, folder, args.items)
            print("".join(f"{f[key]:>{width}}" for key, _, width in COLUMNS), flush=True)
            if name == "postgresql" and server is None:
                engine = create_store_engine(url)
                with engine.begin() as connection:
                    connection.execute(
                        text("DROP TABLE IF EXISTS reviews, results, documents, alembic_version")
                    )
                engine.dispose()
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

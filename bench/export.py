"""Benchmark: `ocrd results --csv --output FILE` streams in constant memory.

Fills a fresh database with N result rows (fast bulk insert; 10 results per document), then
runs the real console command as a child process and reports its wall time and peak RSS
(from wait4's rusage). Peak RSS staying flat from 100k to 1M rows shows the export streams
from the database cursor instead of loading the rows.

    python bench/export.py                         # SQLite, N = 100,000 and 1,000,000
    python bench/export.py --start-postgres        # and a throwaway PostgreSQL server
    python bench/export.py --sizes 1000000 --postgres-url postgresql://postgres@127.0.0.1:5432/x
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

from ocrd.store import open_store
from ocrd.store.engine import Store, create_store_engine

RESULTS_PER_DOCUMENT = 10
CHUNK = 50_000
DIGITS = json.dumps(
    [
        {
            "digit": str(d),
            "confidence": 0.97,
            "box": [10 * d, 5, 9, 20],
            "runner_up": "7",
            "runner_up_confidence": 0.01,
        }
        for d in range(4)
    ]  # fmt: skip
)
DOCUMENT_COLUMNS = (
    "id", "path", "original_name", "sha256", "size", "media_type", "pages", "status", "attempts",
    "received_at", "started_at", "finished_at",
)  # fmt: skip
RESULT_COLUMNS = (
    "document_id", "page", "x", "y", "w", "h", "text", "confidence", "kind", "model", "digits",
    "created_at",
)  # fmt: skip


def document_rows(count: int, now: datetime) -> list[tuple]:
    rows = []
    for i in range(1, count + 1):
        at = now - timedelta(seconds=count - i)
        rows.append((i, f"/srv/ocrd/processed/2026/01/01/scan-{i:07d}.png", f"scan-{i:07d}.png",
                     f"{i:064x}", 123_456, "image/png", 1, "done", 1, at, at, at))  # fmt: skip
    return rows


def result_rows(start: int, stop: int, now: datetime) -> list[tuple]:
    return [
        (1 + n // RESULTS_PER_DOCUMENT, 1, 100 + n % 7, 200, 320, 48, f"{n % 10_000:04d}",
         0.5 + (n % 50) / 100, "handwritten", "digits@1.0+lines@1.0", DIGITS, now)
        for n in range(start, stop)
    ]  # fmt: skip


def fill(store: Store, total_results: int) -> None:
    now = datetime.now(UTC)
    documents = document_rows(-(-total_results // RESULTS_PER_DOCUMENT), now)
    if store.dialect == "postgresql":
        _fill_postgres(store, documents, total_results, now)
        return
    placeholders = ", ".join("?" * len(DOCUMENT_COLUMNS))
    with store.engine.begin() as connection:
        connection.exec_driver_sql(
            f"INSERT INTO documents ({', '.join(DOCUMENT_COLUMNS)}) VALUES ({placeholders})",
            [tuple(_sqlite_value(v) for v in row) for row in documents],
        )
        insert = (
            f"INSERT INTO results ({', '.join(RESULT_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(RESULT_COLUMNS))})"
        )
        for start in range(0, total_results, CHUNK):
            chunk = result_rows(start, min(total_results, start + CHUNK), now)
            connection.exec_driver_sql(
                insert, [tuple(_sqlite_value(v) for v in row) for row in chunk]
            )


def _sqlite_value(value: object) -> object:
    # the schema's UTCDateTime stores naive UTC text on SQLite
    return value.replace(tzinfo=None).isoformat(sep=" ") if isinstance(value, datetime) else value


def _fill_postgres(store: Store, documents: list[tuple], total: int, now: datetime) -> None:
    raw = store.engine.raw_connection()
    try:
        with raw.cursor() as cursor:
            with cursor.copy(f"COPY documents ({', '.join(DOCUMENT_COLUMNS)}) FROM STDIN") as copy:
                for row in documents:
                    copy.write_row(row)
            with cursor.copy(f"COPY results ({', '.join(RESULT_COLUMNS)}) FROM STDIN") as copy:
                for start in range(0, total, CHUNK):
                    for row in result_rows(start, min(total, start + CHUNK), now):
                        copy.write_row(row)
            cursor.execute("SELECT setval('documents_id_seq', %s)", (len(documents),))
            cursor.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()


def ocrd_command() -> list[str]:
    script = Path(sys.executable).parent / "ocrd"
    return [str(script)] if script.exists() else [sys.executable, "-m", "ocrd"]


def measure_export(url: str, output: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of `ocrd results --csv --output FILE` as a child."""
    started = time.perf_counter()
    child = subprocess.Popen([*ocrd_command(), "results", "--csv", "--output", str(output),
                              "--db", url])  # fmt: skip
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"export failed with exit status {child.returncode}")
    return elapsed, usage.ru_maxrss / 1024  # ru_maxrss is KiB on Linux


def reset_postgres(url: str) -> None:
    """Empty the scratch PostgreSQL database (the next open_store migrates it again)."""
    engine = create_store_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text("DROP TABLE IF EXISTS reviews, results, documents, alembic_version")
        )
    engine.dispose()


def run_one(url: str, size: int, workdir: Path) -> dict[str, object]:
    # Fill in a child process: a child forked from a big parent would count the parent's
    # pages in its peak RSS until it execs, hiding what the export itself uses.
    started = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--fill", url, str(size)], check=True)
    fill_seconds = time.perf_counter() - started
    output = workdir / f"export-{size}.csv"
    seconds, peak_mib = measure_export(url, output)
    with output.open() as handle:
        lines = sum(1 for _ in handle)
    if lines != size + 1:
        raise SystemExit(f"expected {size} rows + header, got {lines} lines")
    figures = {
        "engine": url.split(":", 1)[0].split("+")[0],
        "rows": size,
        "fill_s": round(fill_seconds, 1),
        "export_s": round(seconds, 1),
        "rows_per_s": round(size / seconds),
        "peak_rss_mib": round(peak_mib, 1),
        "csv_mib": round(output.stat().st_size / 2**20, 1),
    }
    output.unlink()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--postgres-url", help="also run against this (scratch!) PostgreSQL DB")
    parser.add_argument(
        "--start-postgres",
        action="store_true",
        help="also run against a throwaway PostgreSQL server (the test suite's fixture)",
    )
    parser.add_argument("--workdir", type=Path, help="where the SQLite files go (default: tmp)")
    parser.add_argument("--fill", nargs=2, metavar=("URL", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fill:  # internal: the filling child process
        store = open_store(args.fill[0])
        fill(store, int(args.fill[1]))
        store.dispose()
        return

    server = None
    if args.start_postgres:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests.conftest import PostgresServer, find_postgres_bin

        server = PostgresServer(find_postgres_bin())
        server.start()
        args.postgres_url = server.create_database("bench")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ocrd-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"{'engine':<12}{'rows':>10}{'fill s':>9}{'export s':>10}{'rows/s':>10}"
          f"{'peak RSS MiB':>14}{'CSV MiB':>9}")  # fmt: skip
    try:
        for size in args.sizes:
            targets = [f"sqlite:///{workdir / f'bench-{size}.db'}"]
            if args.postgres_url:
                reset_postgres(args.postgres_url)
                targets.append(args.postgres_url)
            for url in targets:
                f = run_one(url, size, workdir)
                print(f"{f['engine']:<12}{f['rows']:>10,}{f['fill_s']:>9}{f['export_s']:>10}"
                      f"{f['rows_per_s']:>10,}{f['peak_rss_mib']:>14}{f['csv_mib']:>9}",
                      flush=True)  # fmt: skip
                if url.startswith("postgresql"):
                    reset_postgres(url)
    finally:
        if server is not None:
            server.stop()
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

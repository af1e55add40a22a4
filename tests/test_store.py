"""Store behaviour on SQLite and PostgreSQL: lifecycle, duplicates, queries, streaming, status."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from ocrd.store import Document, DocumentStatus, Result, Store, documents
from ocrd.store.documents import FileDigest
from ocrd.store.queries import (
    COLUMNS,
    STABLE_COLUMNS,
    ResultFilter,
    export_values,
    iter_results,
    parse_when,
    status_summary,
)
from ocrd.types import Box, DigitReading, DocumentReading, FieldReading


def reading(texts: list[str], *, kind: str = "handwritten", pages: int = 1) -> DocumentReading:
    fields = [
        FieldReading(
            page=1 + i % pages,
            box=Box(10 * i, 20, 30, 40),
            text=value,
            confidence=0.5 + 0.1 * i,
            kind=kind,  # type: ignore[arg-type]
            model="digits@1.0+lines@1.0",
            digits=[
                DigitReading(d, 0.9, Box(10 * i + j, 20, 5, 40), "7", 0.05)
                for j, d in enumerate(value)
            ],  # fmt: skip
        )
        for i, value in enumerate(texts)
    ]
    return DocumentReading(media_type="image/png", pages=pages, fields=fields)


def add_done(store: Store, name: str, texts: list[str], **kwargs: object) -> int:
    digest = FileDigest(sha256=name.encode().hex().ljust(64, "0")[:64], size=len(name))
    with store.session() as session:
        document = documents.register(session, f"/in/{name}", digest)
        documents.start(session, document.id, worker="test:1")
        documents.finish(session, document.id, reading(texts, **kwargs))  # type: ignore[arg-type]
        return document.id


def count_results(store: Store, document_id: int) -> int:
    with store.session(write=False) as session:
        return session.scalar(
            select(func.count()).select_from(Result).where(Result.document_id == document_id)
        )


def test_lifecycle_records_results_and_bookkeeping(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "scan.png"
    path.write_bytes(b"not really a png, only hashed here")
    digest = documents.digest_file(path)
    assert digest.size == path.stat().st_size and len(digest.sha256) == 64

    with store.session() as session:
        document = documents.register(session, path, digest)
        assert document.status == DocumentStatus.PENDING and document.original_name == "scan.png"
        documents.start(session, document.id, worker="host:42")
    with store.session() as session:
        documents.finish(session, document.id, reading(["123", "45"], pages=2))

    with store.session(write=False) as session:
        stored = session.get(Document, document.id)
        assert stored is not None
        assert (stored.status, stored.pages, stored.media_type) == ("done", 2, "image/png")
        assert stored.attempts == 1 and stored.claimed_by is None
        assert stored.finished_at is not None and stored.finished_at.tzinfo is not None
        assert stored.finished_at.utcoffset() == timedelta(0)
        assert stored.started_at <= stored.finished_at
        rows = stored.results
        assert [(r.page, r.text, r.x) for r in rows] == [(1, "123", 0), (2, "45", 10)]
        assert rows[0].digits[0] == {
            "digit": "1", "confidence": 0.9, "box": [0, 20, 5, 40],
            "runner_up": "7", "runner_up_confidence": 0.05,
        }  # fmt: skip


def test_finish_again_replaces_results_instead_of_adding(store: Store) -> None:
    document_id = add_done(store, "a.png", ["1", "2", "3"])
    with store.session() as session:  # a redo after a crash: same document read again
        documents.start(session, document_id)
        documents.finish(session, document_id, reading(["9"]))
    assert count_results(store, document_id) == 1
    with store.session() as session:
        documents.start(session, document_id)
        documents.fail(session, document_id, "ValueError: broken\nsecond line")
    assert count_results(store, document_id) == 0
    with store.session(write=False) as session:
        failed = session.get(Document, document_id)
        assert failed.status == "failed" and failed.error == "ValueError: broken second line"
        assert failed.attempts == 3


def test_same_content_is_recorded_as_duplicate(store: Store) -> None:
    digest = FileDigest("ab" * 32, 10)
    with store.session() as session:
        first = documents.register(session, "/in/one.png", digest)
        documents.start(session, first.id)
        documents.finish(session, first.id, reading(["7"]))
    with store.session() as session:
        second = documents.register(session, "/in/two.png", digest)
        third = documents.register(session, "/in/three.png", digest)
    for duplicate in (second, third):
        assert duplicate.status == DocumentStatus.DUPLICATE and duplicate.duplicate_of == first.id
        assert duplicate.id != first.id and duplicate.finished_at is not None

    with store.session() as session:  # --reprocess: the canonical document is read again
        again = documents.register(session, "/in/four.png", digest, reprocess=True)
    assert again.id == first.id and again.status == DocumentStatus.PENDING
    assert again.path == "/in/four.png"


def test_failed_content_is_retried_when_dropped_again(store: Store) -> None:
    digest = FileDigest("cd" * 32, 10)
    with store.session() as session:
        first = documents.register(session, "/in/x.png", digest)
        documents.start(session, first.id)
        documents.fail(session, first.id, "truncated")
    with store.session() as session:
        again = documents.register(session, "/in/x2.png", digest)
    assert again.id == first.id and again.status == DocumentStatus.PENDING and again.error is None


def test_partial_unique_index_allows_only_one_canonical_row(store: Store) -> None:
    sha = "ef" * 32
    now = datetime.now(UTC)

    def row(status: str) -> Document:
        return Document(path="/p", original_name="p", sha256=sha, size=1, status=status,
                        attempts=0, received_at=now)  # fmt: skip

    with store.session() as session:
        session.add_all([row("done"), row("duplicate"), row("duplicate")])
    with pytest.raises(IntegrityError), store.session() as session:
        session.add(row("pending"))


def test_results_filters(store: Store) -> None:
    old = add_done(store, "old.png", ["11"])
    add_done(store, "hand.png", ["22", "33"])  # confidences 0.5, 0.6
    add_done(store, "print.tif", ["44"], kind="printed")
    with store.session() as session:  # make "old" finished ten days ago
        session.get(Document, old).finished_at = datetime.now(UTC) - timedelta(days=10)

    def texts(**kwargs: object) -> list[str]:
        return [row.text for row in iter_results(store, ResultFilter(**kwargs))]

    assert texts() == ["44", "22", "33", "11"]  # newest document first, fields in order
    assert texts(oldest_first=True) == ["11", "22", "33", "44"]
    assert texts(since=parse_when("7d")) == ["44", "22", "33"]
    assert texts(until=parse_when("7d")) == ["11"]
    assert texts(kind="printed") == ["44"]
    assert texts(min_confidence=0.55) == ["33"]
    assert texts(path_glob="*.TIF") == ["44"]  # case-insensitive, on the name
    assert texts(path_glob="/in/h*") == ["22", "33"]  # or on the full path
    assert texts(path_glob="hand_png") == []  # _ is literal, not a wildcard
    assert texts(limit=2) == ["44", "22"]


def test_status_filter_lists_documents_without_results(store: Store) -> None:
    add_done(store, "ok.png", ["5"])
    with store.session() as session:
        bad = documents.register(session, "/in/bad.png", FileDigest("12" * 32, 3))
        documents.start(session, bad.id)
        documents.fail(session, bad.id, "not an image")
    rows = list(iter_results(store, ResultFilter(status="failed")))
    assert len(rows) == 1
    assert rows[0].path == "/in/bad.png" and rows[0].error == "not an image"
    assert rows[0].result_id is None and rows[0].text is None


def test_export_row_starts_with_the_stable_columns(store: Store) -> None:
    add_done(store, "a.png", ["123"])
    (row,) = iter_results(store, ResultFilter())
    assert COLUMNS[: len(STABLE_COLUMNS)] == STABLE_COLUMNS
    assert STABLE_COLUMNS == (
        "path", "page", "x", "y", "w", "h", "text", "confidence", "kind", "model",
        "processed_at", "sha256",
    )  # fmt: skip
    values = dict(zip(COLUMNS, export_values(row), strict=True))
    assert values["path"] == "/in/a.png" and values["text"] == "123"
    assert values["model"] == "digits@1.0+lines@1.0" and values["kind"] == "handwritten"
    processed = datetime.fromisoformat(values["processed_at"])
    assert processed.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - processed) < timedelta(minutes=5)
    assert json.loads(values["digits"])[0]["digit"] == "1"


def test_export_streams_many_rows(store: Store) -> None:
    """Rows come from the cursor in batches; every inserted row arrives exactly once."""
    total = 5000
    with store.session() as session:
        document = documents.register(session, "/in/big.tif", FileDigest("9a" * 32, 1))
        documents.start(session, document.id)
        documents.finish(session, document.id, reading([str(i) for i in range(total)]))
    seen = [row.text for row in iter_results(store, ResultFilter())]
    assert len(seen) == total and seen[:3] == ["0", "1", "2"] and seen[-1] == str(total - 1)


def test_status_summary(store: Store) -> None:
    add_done(store, "a.png", ["1", "2"])
    with store.session() as session:
        waiting = documents.register(session, "/in/wait.png", FileDigest("77" * 32, 3))
        waiting.received_at = datetime.now(UTC) - timedelta(minutes=5)
        documents.register(session, "/in/later.png", FileDigest("78" * 32, 3))
    summary = status_summary(store)
    assert summary.counts["done"] == 1 and summary.counts["pending"] == 2
    assert summary.counts["failed"] == 0
    assert summary.results == 2
    assert summary.last_processed["path"] == "/in/a.png"
    assert summary.oldest_pending["path"] == "/in/wait.png"
    assert 290 < summary.oldest_pending["age_seconds"] < 400
    assert summary.files_per_minute == pytest.approx(1 / 60)
    assert summary.results_per_minute == pytest.approx(2 / 60)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("now", datetime(2026, 3, 10, 12, 0, tzinfo=UTC)),
        ("30m", datetime(2026, 3, 10, 11, 30, tzinfo=UTC)),
        ("2h", datetime(2026, 3, 10, 10, 0, tzinfo=UTC)),
        ("7d", datetime(2026, 3, 3, 12, 0, tzinfo=UTC)),
        ("1w", datetime(2026, 3, 3, 12, 0, tzinfo=UTC)),
        ("2026-03-01T08:00:00+01:00", datetime(2026, 3, 1, 7, 0, tzinfo=UTC)),
    ],
)
def test_parse_when(spec: str, expected: datetime) -> None:
    assert parse_when(spec, now=datetime(2026, 3, 10, 12, 0, tzinfo=UTC)) == expected


def test_parse_when_local_days() -> None:
    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    today = parse_when("today", now=now)
    assert today.astimezone().hour == 0 and today.astimezone().minute == 0
    assert today <= now < today + timedelta(days=1)
    assert parse_when("yesterday", now=now) == today - timedelta(days=1)
    assert parse_when("2026-03-10", now=now) == today  # ISO date = local midnight
    with pytest.raises(ValueError, match="cannot read time 'soon'"):
        parse_when("soon")


def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(sqlite_url: str) -> None:
    from ocrd.store import open_store

    store = open_store(sqlite_url)
    with store.engine.connect() as connection:
        pragma = {name: connection.execute(text(f"PRAGMA {name}")).scalar()
                  for name in ("journal_mode", "busy_timeout", "foreign_keys")}  # fmt: skip
    assert pragma == {"journal_mode": "wal", "busy_timeout": 30000, "foreign_keys": 1}
    with pytest.raises(IntegrityError), store.session() as session:
        session.execute(
            text("INSERT INTO results (document_id, page, x, y, w, h, text, confidence, kind, "
                 "model, digits, created_at) VALUES (999, 1, 0, 0, 1, 1, '1', 0.5, 'printed', "
                 "'m', '[]', '2026-01-01 00:00:00')")
        )  # fmt: skip
    store.dispose()


def test_sqlite_write_sessions_take_the_write_lock_up_front(sqlite_url: str) -> None:
    import sqlite3

    from ocrd.store import open_store

    store = open_store(sqlite_url)
    database = store.engine.url.database

    def other_writer_gets_lock() -> bool:
        connection = sqlite3.connect(database, timeout=0, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("ROLLBACK")
            return True
        except sqlite3.OperationalError:
            return False
        finally:
            connection.close()

    with store.session():
        assert not other_writer_gets_lock()  # no read-then-upgrade deadlock for writers
    with store.session(write=False) as session:
        session.execute(text("SELECT count(*) FROM documents"))
        assert other_writer_gets_lock()  # readers never block writers (WAL)
    store.dispose()

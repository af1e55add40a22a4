"""Store.kept_open: a run of SQLite transactions without a WAL checkpoint at each close."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import text

from ocrd.store import open_store


def _write(store, value: str) -> None:  # noqa: ANN001 (ocrd.store.Store)
    with store.session() as session:
        session.execute(text("INSERT INTO probe (v) VALUES (:v)"), {"v": value})


def test_kept_open_leaves_the_wal_to_sqlite_and_blocks_no_one(sqlite_url: str) -> None:
    store = open_store(sqlite_url)
    database = Path(store.engine.url.database)
    wal = database.with_name(database.name + "-wal")
    with store.session() as session:
        session.execute(text("CREATE TABLE probe (v TEXT)"))
    _write(store, "alone")
    assert not wal.exists()  # the last connection closed: checkpointed, WAL removed

    with store.kept_open():
        _write(store, "kept")
        assert wal.exists()  # no checkpoint (and its sync) at the session's close
        other = sqlite3.connect(database, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # the idle connection holds no lock
            other.execute("INSERT INTO probe (v) VALUES ('other')")
            other.execute("COMMIT")
            committed = [row[0] for row in other.execute("SELECT v FROM probe")]
        finally:
            other.close()
        assert committed == ["alone", "kept", "other"]
    assert not wal.exists()  # checkpointed once, when the run ends
    store.dispose()


def test_kept_open_is_a_no_op_for_an_in_memory_database() -> None:
    store = open_store("sqlite://")
    with store.kept_open(), store.session() as session:
        assert session.execute(text("SELECT 1")).scalar() == 1
    store.dispose()

"""The daemon: claims on SQLite and PostgreSQL, then `ocrd watch` as a real subprocess with
the real pipeline and models: mixed drop, kill -9 mid-burst, three daemons on one inbox."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from datetime import timedelta
from pathlib import Path

from ocrd.store import Document, DocumentStatus, documents
from ocrd.store.claims import (
    claim_documents,
    heartbeat,
    release_claims,
    release_dead_claims,
)

# --- claims -------------------------------------------------------------------------------------


def register_files(store, folder: Path, count: int) -> list[int]:  # noqa: ANN001
    ids = []
    folder.mkdir(parents=True, exist_ok=True)
    with store.session() as session:
        for i in range(count):
            path = folder / f"f{i}.bin"
            path.write_bytes(f"content {i}".encode())
            ids.append(documents.register(session, path, documents.digest_file(path)).id)
    return ids


def statuses(store) -> dict[int, tuple[str, str | None, int]]:  # noqa: ANN001
    with store.session() as session:
        return {d.id: (d.status, d.claimed_by, d.attempts) for d in session.query(Document).all()}


def test_claims_hand_out_each_document_once(store, tmp_path: Path) -> None:  # noqa: ANN001
    ids = register_files(store, tmp_path, 5)
    first = claim_documents(store, "a:1", 3)
    second = claim_documents(store, "b:2", 3)
    assert [c.id for c in first] == ids[:3]
    assert [c.id for c in second] == ids[3:]
    assert claim_documents(store, "c:3", 3) == []
    rows = statuses(store)
    assert all(status == DocumentStatus.PROCESSING for status, _, _ in rows.values())
    assert {rows[i][1] for i in ids[:3]} == {"a:1"}
    assert all(rows[i][2] == 1 for i in ids)


def test_concurrent_claimers_never_share_a_document(store, tmp_path: Path) -> None:  # noqa: ANN001
    ids = register_files(store, tmp_path, 60)
    got: dict[str, list[int]] = {}
    barrier = threading.Barrier(6)

    def worker(name: str) -> None:
        barrier.wait()
        mine: list[int] = []
        while batch := claim_documents(store, name, 4):
            mine += [c.id for c in batch]
        got[name] = mine

    threads = [threading.Thread(target=worker, args=(f"w:{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    claimed = [doc_id for mine in got.values() for doc_id in mine]
    assert sorted(claimed) == ids  # every document once, none twice
    rows = statuses(store)
    for name, mine in got.items():
        assert all(rows[i][1] == name for i in mine)


def test_stale_claims_are_taken_over_unless_renewed(store, tmp_path: Path) -> None:  # noqa: ANN001
    ids = register_files(store, tmp_path, 2)
    claim_documents(store, "dead:1", 2)
    assert claim_documents(store, "live:2", 2, stale_after=timedelta(hours=1)) == []
    assert heartbeat(store, "dead:1", [ids[0]]) == 1
    assert heartbeat(store, "someone-else:3", ids) == 0
    taken = claim_documents(store, "live:2", 2, stale_after=timedelta(0))
    assert sorted(c.id for c in taken) == ids
    assert all(c.attempts == 2 for c in taken)


def test_release_dead_local_claims_but_not_live_ones(store, tmp_path: Path) -> None:  # noqa: ANN001
    ids = register_files(store, tmp_path, 3)
    host = socket.gethostname()
    child = subprocess.Popen(["true"])
    child.wait()  # reaped: its pid is certainly not alive now
    dead_pid = child.pid
    claim_documents(store, f"{host}:{dead_pid}", 1)
    claim_documents(store, f"{host}:{os.getppid()}", 1)  # alive: our parent
    claim_documents(store, f"elsewhere:{dead_pid}", 1)  # other host: cannot tell, keep
    freed = release_dead_claims(store, f"{host}:{os.getpid()}")
    assert freed == [ids[0]]
    rows = statuses(store)
    assert rows[ids[0]][:2] == (DocumentStatus.PENDING, None)
    assert rows[ids[1]][0] == rows[ids[2]][0] == DocumentStatus.PROCESSING


def test_released_claims_go_back_to_the_queue(store, tmp_path: Path) -> None:  # noqa: ANN001
    ids = register_files(store, tmp_path, 2)
    claim_documents(store, "me:1", 2)
    assert release_claims(store, "other:2", ids) == 0
    assert release_claims(store, "me:1", ids) == 2
    again = claim_documents(store, "me:1", 2)
    assert [(c.id, c.attempts) for c in again] == [(ids[0], 1), (ids[1], 1)]

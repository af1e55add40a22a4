"""The daemon's batched store paths, on SQLite and PostgreSQL: a group finished in three
statements stores what finishing one by one stores, and the intake's one look-up per batch
sends to the file-by-file path every file whose content or row is already known."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from ocrd.service.intake_loop import Intake
from ocrd.store import Document, DocumentStatus, Result, Store, documents
from ocrd.store.documents import FileDigest
from ocrd.types import Box, DigitReading, DocumentReading, FieldReading


def _reading(texts: list[str], notes: list[str]) -> DocumentReading:
    fields = [
        FieldReading(
            page=1,
            box=Box(10 * i, 20, 30, 40),
            text=text,
            confidence=0.9,
            kind="handwritten",
            model="digits@2.0",
            digits=[DigitReading(d, 0.9, Box(10 * i, 20, 5, 40), "7", 0.05) for d in text],
            needs_review=i == 0,
            review_reason="low confidence" if i == 0 else None,
        )  # fmt: skip
        for i, text in enumerate(texts)
    ]
    return DocumentReading(media_type="image/png", pages=2, fields=fields, notes=notes)


def _digest(n: int) -> FileDigest:
    return FileDigest(sha256=f"{n:064x}", size=n)


def _started(store: Store, count: int, first: int = 0) -> list[int]:
    ids = []
    with store.session() as session:
        for n in range(first, first + count):
            document = documents.register(session, f"/in/{n}.png", _digest(n))
            documents.start(session, document.id, worker="test:1")
            ids.append(document.id)
    return ids


def _stored(store: Store, ids: list[int]) -> list[tuple]:
    """Everything finishing writes, without ids and times."""
    with store.session(write=False) as session:
        docs = session.scalars(select(Document).where(Document.id.in_(ids)).order_by(Document.id))
        out = []
        for doc in docs:
            results = session.scalars(
                select(Result).where(Result.document_id == doc.id).order_by(Result.id)
            )
            rows = [(r.text, r.x, r.digits, r.needs_review, r.review_reason) for r in results]
            out.append((doc.status, doc.media_type, doc.pages, doc.notes, doc.error,
                        doc.claimed_by, doc.finished_at is not None, rows))  # fmt: skip
    return out


def test_a_group_finished_at_once_stores_what_one_by_one_stores(store: Store) -> None:
    readings = [_reading(["12", "345"], ["no DPI tag"]), _reading([], []), _reading(["7"], [])]
    one_by_one, together = _started(store, 3), _started(store, 3, first=3)
    with store.session() as session:
        for doc_id, reading in zip(one_by_one, readings, strict=True):
            documents.finish(session, doc_id, reading)
    with store.session() as session:
        documents.finish_many(session, [(doc_id, _reading(["9"], [])) for doc_id in together])
    with store.session() as session:  # a redo replaces the earlier results
        documents.finish_many(session, list(zip(together, readings, strict=True)))
    assert _stored(store, together) == _stored(store, one_by_one)
    assert _stored(store, together)[0][0] == DocumentStatus.DONE.value
    assert _stored(store, together)[0][3] == ["no DPI tag"]
    assert len(_stored(store, together)[0][7]) == 2


def test_finishing_a_missing_document_in_a_group_raises(store: Store) -> None:
    (doc_id,) = _started(store, 1)
    with pytest.raises(LookupError), store.session() as session:
        documents.finish_many(
            session, [(doc_id, _reading(["1"], [])), (doc_id + 99, _reading([], []))]
        )


def test_one_look_up_splits_a_batch_into_new_and_known_files(store: Store) -> None:
    with store.session() as session:
        documents.register(session, "/in/seen.png", _digest(1))  # content 1 has a canonical row
        canonical = documents.register(session, "/in/orig.png", _digest(2))
        session.flush()
        documents.register(session, "/in/copy.png", _digest(2))  # a duplicate row
        session.delete(canonical)  # content 2 now has only that duplicate row
    batch = [
        (Path("/in/other-name.png"), _digest(1)),  # known content
        (Path("/in/third.png"), _digest(2)),  # only a duplicate row of another file: new
        (Path("/in/copy.png"), _digest(2)),  # this very file has a row
        (Path("/in/fresh.png"), _digest(3)),  # new
        (Path("/in/fresh-copy.png"), _digest(3)),  # same content as the one before: waits
        (Path("/in/seen.png"), _digest(4)),  # same path, new content: new
    ]
    with store.session() as session:
        new, known = Intake._split_new(session, batch)
    assert [p.name for p, _ in new] == ["third.png", "fresh.png", "seen.png"]
    assert [p.name for p, _ in known] == ["other-name.png", "copy.png", "fresh-copy.png"]

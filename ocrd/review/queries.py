"""What the review pages read: queue items, one field, the documents list and one document."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, case, exists, func, select
from sqlalchemy.orm import Session

from ocrd.store.models import Document, Result
from ocrd.store.queries import format_time, glob_to_like
from ocrd.store.reviews import Review, waiting

DOCUMENTS_PAGE = 50


@dataclass(frozen=True)
class QueueFilter:
    template: str | None = None
    field: str | None = None
    since: datetime | None = None  # read at or after
    until: datetime | None = None  # read before


def _field_select() -> Select:
    return (
        select(Result, Document.original_name, Document.path, Review)
        .join(Document, Document.id == Result.document_id)
        .outerjoin(Review, Review.result_id == Result.id)
    )


def _filtered(query: Select, filters: QueueFilter) -> Select:
    if filters.template:
        query = query.where(Result.template == filters.template)
    if filters.field:
        query = query.where(Result.field == filters.field)
    if filters.since is not None:
        query = query.where(Result.created_at >= filters.since)
    if filters.until is not None:
        query = query.where(Result.created_at < filters.until)
    return query


def queue_items(
    session: Session, filters: QueueFilter, *, after: int = 0, limit: int = 5
) -> tuple[list[dict[str, Any]], list[tuple[str, int]]]:
    """The next ``limit`` waiting fields after result id ``after``, oldest first, and the
    (file, page) each is cut from (for the server only: the page never sees paths)."""
    query = select(Result, Document.original_name, Document.path).join(Document)
    query = _filtered(query.where(waiting(), Result.id > after), filters)
    rows = session.execute(query.order_by(Result.id).limit(limit)).all()
    return [field_item(*row, None) for row in rows], [(row[2], row[0].page) for row in rows]


def queue_count(session: Session, filters: QueueFilter) -> int:
    query = select(func.count()).select_from(Result).where(waiting())
    return session.scalar(_filtered(query, filters)) or 0


def queue_choices(session: Session) -> dict[str, list[str]]:
    """Templates and fields that have waiting items (for the filter menus)."""
    rows = session.execute(select(Result.template, Result.field).where(waiting()).distinct()).all()
    return {
        "templates": sorted({t for t, _ in rows if t}),
        "fields": sorted({f for _, f in rows if f}),
    }


def field(session: Session, result_id: int) -> dict[str, Any] | None:
    row = session.execute(_field_select().where(Result.id == result_id)).first()
    return None if row is None else field_item(*row)


def field_item(
    result: Result, original_name: str, path: str, review: Review | None
) -> dict[str, Any]:
    """One field as the page's JavaScript and templates use it (no file paths: ids only)."""
    return {
        "id": result.id,
        "document_id": result.document_id,
        "document": original_name,
        "page": result.page,
        "box": [result.x, result.y, result.w, result.h],
        "text": result.text,
        "confidence": round(result.confidence, 4),
        "kind": result.kind,
        "template": result.template,
        "field": result.field,
        "needs_review": result.needs_review,
        "reason": result.review_reason,
        "digits": [
            {
                "digit": d.get("digit"),
                "confidence": round(float(d.get("confidence") or 0.0), 3),
                "runner_up": d.get("runner_up"),
                "runner_up_confidence": round(float(d.get("runner_up_confidence") or 0.0), 3),
            }
            for d in (result.digits or [])
        ],
        "read_at": format_time(result.created_at),
        "review": None if review is None else review_item(review),
        "crop_url": f"/crops/{result.id}.png",
        "document_url": f"/documents/{result.document_id}",
    }


def review_item(review: Review) -> dict[str, Any]:
    return {
        "status": review.status,
        "text": review.text,
        "reviewer": review.reviewer,
        "reviewed_at": format_time(review.reviewed_at),
    }


def crop_source(session: Session, result_id: int) -> tuple[str, int, Result] | None:
    """(file path, page, result) for rendering a crop; None when the result does not exist."""
    row = session.execute(
        select(Document.path, Result).join(Document).where(Result.id == result_id)
    ).first()
    return None if row is None else (row[0], row[1].page, row[1])


# -- documents ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DocumentFilter:
    path_glob: str | None = None
    status: str | None = None
    template: str | None = None
    since: datetime | None = None  # received at or after
    until: datetime | None = None
    page: int = 1


def documents_page(session: Session, filters: DocumentFilter) -> tuple[list[dict], int]:
    """One page of documents, newest first, with their field and waiting counts; and the total."""
    query = select(Document)
    if filters.path_glob:
        pattern = filters.path_glob
        like = glob_to_like(pattern if "*" in pattern or "?" in pattern else f"*{pattern}*")
        query = query.where(
            Document.path.ilike(like, escape="\\") | Document.original_name.ilike(like, escape="\\")
        )
    if filters.status:
        query = query.where(Document.status == filters.status)
    if filters.template:
        query = query.where(
            exists().where(Result.document_id == Document.id, Result.template == filters.template)
        )
    if filters.since is not None:
        query = query.where(Document.received_at >= filters.since)
    if filters.until is not None:
        query = query.where(Document.received_at < filters.until)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    offset = (max(1, filters.page) - 1) * DOCUMENTS_PAGE
    documents = session.scalars(
        query.order_by(Document.received_at.desc(), Document.id.desc())
        .offset(offset)
        .limit(DOCUMENTS_PAGE)
    ).all()
    counts = _field_counts(session, [d.id for d in documents])
    return [document_item(d, *counts.get(d.id, (0, 0))) for d in documents], total


def _field_counts(session: Session, ids: list[int]) -> dict[int, tuple[int, int]]:
    if not ids:
        return {}
    waiting_flag = func.sum(case((waiting(), 1), else_=0))
    rows = session.execute(
        select(Result.document_id, func.count(), waiting_flag)
        .where(Result.document_id.in_(ids))
        .group_by(Result.document_id)
    ).all()
    return {doc_id: (int(n), int(w or 0)) for doc_id, n, w in rows}


def document_item(document: Document, fields: int = 0, waiting_count: int = 0) -> dict[str, Any]:
    return {
        "id": document.id,
        "name": document.original_name,
        "status": document.status,
        "error": document.error,
        "notes": document.notes or [],
        "pages": document.pages or 0,
        "media_type": document.media_type,
        "received_at": format_time(document.received_at),
        "finished_at": format_time(document.finished_at),
        "fields": fields,
        "waiting": waiting_count,
    }


def document_fields(session: Session, document_id: int) -> list[dict[str, Any]]:
    rows = session.execute(
        _field_select().where(Result.document_id == document_id).order_by(Result.page, Result.id)
    ).all()
    return [field_item(*row) for row in rows]

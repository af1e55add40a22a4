"""Reviews: what a person decided about a field the reader was unsure of.

One row per result (a second decision on the same field replaces the first); the row goes with
its result when a document is read again. The review queue is every result marked
``needs_review`` that has no row here yet, oldest first.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    CheckConstraint,
    ColumnElement,
    ForeignKey,
    Index,
    String,
    Text,
    delete,
    func,
    insert,
    select,
    text,
    true,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from ocrd.store.models import Base, BigId, Result, _in_list, utcnow


class ReviewStatus(enum.StrEnum):
    ACCEPTED = "accepted"  # the reading was right
    CORRECTED = "corrected"  # the reviewer typed the right value
    ILLEGIBLE = "illegible"  # nobody can read it: no value


class Review(Base):
    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    result_id: Mapped[int] = mapped_column(BigId, ForeignKey("results.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))
    text: Mapped[str | None] = mapped_column(Text)  # the value to use (None when illegible)
    reviewer: Mapped[str] = mapped_column(String(255))
    reviewed_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        CheckConstraint(_in_list("status", tuple(s.value for s in ReviewStatus)), name="status"),
        Index("uq_reviews_result_id", "result_id", unique=True),
        Index("ix_reviews_reviewed_at", "reviewed_at"),
    )

    def __repr__(self) -> str:
        return f"Review(result_id={self.result_id}, status={self.status!r}, text={self.text!r})"


# The queue in id order (oldest first), over the marked results only: the planner reads the
# next waiting items straight off this index however many sure results the table holds.
# Queries spell the condition ``needs_review = true`` so both engines match the index.
Index(
    "ix_results_review_queue",
    Result.id,
    sqlite_where=text("needs_review = 1"),
    postgresql_where=text("needs_review"),
)


@dataclass(frozen=True)
class Decision:
    """A reviewer's decision, as the page or an API client sends it."""

    result_id: int
    status: ReviewStatus
    text: str | None
    reviewer: str


def decide(session: Session, decision: Decision) -> Review:
    """Record ``decision`` (replacing an earlier one on the same field). Raises LookupError when
    the result does not exist, ValueError for a correction without text."""
    result = session.get(Result, decision.result_id)
    if result is None:
        raise LookupError(f"no result with id {decision.result_id}")
    text = _decided_text(decision, result.text)
    session.execute(delete(Review).where(Review.result_id == decision.result_id))
    now = utcnow()
    session.execute(
        insert(Review).values(
            result_id=decision.result_id, status=decision.status.value, text=text,
            reviewer=decision.reviewer, reviewed_at=now,
        )
    )  # fmt: skip
    return session.scalars(select(Review).where(Review.result_id == decision.result_id)).one()


def _decided_text(decision: Decision, machine_text: str) -> str | None:
    if decision.status is ReviewStatus.ILLEGIBLE:
        return None
    if decision.status is ReviewStatus.ACCEPTED:
        return machine_text
    text = (decision.text or "").strip()
    if not text:
        raise ValueError("a correction needs the right value (or mark the field illegible)")
    return text


def review_of(session: Session, result_id: int) -> Review | None:
    return session.scalars(select(Review).where(Review.result_id == result_id)).one_or_none()


def waiting() -> ColumnElement[bool]:
    """The review queue's condition on ``results``: marked for a look and not decided yet.
    NOT EXISTS (not an outer join) lets the planners stop after the first few in id order."""
    decided = select(Review.id).where(Review.result_id == Result.id).correlate(Result).exists()
    return (Result.needs_review == true()) & ~decided


def queue_stats(session: Session) -> tuple[int, datetime | None]:
    """How many fields wait for review and when the oldest of them was read."""
    count, oldest = session.execute(
        select(func.count(), func.min(Result.created_at)).select_from(Result).where(waiting())
    ).one()
    if isinstance(oldest, str):  # SQLite's MIN() gives the stored text back
        oldest = datetime.fromisoformat(oldest)
    return int(count or 0), None if oldest is None else oldest.replace(tzinfo=oldest.tzinfo or UTC)

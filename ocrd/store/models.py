"""SQLAlchemy 2.0 typed ORM models: one row per received file, one row per field read.

The schema is owned by the Alembic migrations in ``migrations/``; a test proves that
``alembic upgrade head`` produces exactly this metadata on SQLite and PostgreSQL.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class DocumentStatus(enum.StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"
    DUPLICATE = "duplicate"


RESULT_KINDS = ("handwritten", "printed", "unknown")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every engine.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so values are stored as
    naive UTC text and given back their UTC zone when read. Naive input is taken as UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# 64-bit ids on PostgreSQL; SQLite only auto-increments an INTEGER PRIMARY KEY (also 64-bit).
BigId = BigInteger().with_variant(Integer(), "sqlite")

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


def _in_list(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Document(Base):
    """One received file. ``sha256`` is unique among canonical documents; a later drop of the
    same content is its own row with status ``duplicate`` pointing at the canonical one."""

    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    path: Mapped[str] = mapped_column(Text)  # where the file is now (the daemon moves it)
    original_name: Mapped[str] = mapped_column(Text)  # file name when it was received
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str | None] = mapped_column(String(100))
    pages: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=DocumentStatus.PENDING.value)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    duplicate_of: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("documents.id", ondelete="SET NULL")
    )
    # Which worker holds the document while it is processing, and its last sign of life:
    # lets the daemon reclaim work from a crashed worker (see ocrd/store/claims.py).
    claimed_by: Mapped[str | None] = mapped_column(String(255))
    heartbeat_at: Mapped[datetime | None]
    # Warnings that did not stop the document ("no fields found", DPI tag vs content).
    notes: Mapped[list[str] | None] = mapped_column(JSON)

    results: Mapped[list[Result]] = relationship(
        back_populates="document",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Result.id",
    )

    __table_args__ = (
        CheckConstraint(_in_list("status", tuple(s.value for s in DocumentStatus)), name="status"),
        # Partial unique index: the same content may arrive many times, but only one row
        # per content is canonical; every other drop is recorded as a duplicate.
        Index(
            "uq_documents_sha256_canonical",
            "sha256",
            unique=True,
            sqlite_where=text("status != 'duplicate'"),
            postgresql_where=text("status != 'duplicate'"),
        ),
        Index("ix_documents_status_received_at", "status", "received_at"),  # queue, oldest pending
        Index("ix_documents_finished_at", "finished_at"),  # results --since/--until, status
        Index("ix_documents_path", "path"),  # lookups by file
    )

    def __repr__(self) -> str:
        return f"Document(id={self.id}, status={self.status!r}, path={self.path!r})"


class Result(Base):
    """One field read on a page: its box in page pixels (before deskew), text and confidence."""

    __tablename__ = "results"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    document_id: Mapped[int] = mapped_column(BigId, ForeignKey("documents.id", ondelete="CASCADE"))
    page: Mapped[int] = mapped_column(Integer)  # 1-based
    x: Mapped[int] = mapped_column(Integer)
    y: Mapped[int] = mapped_column(Integer)
    w: Mapped[int] = mapped_column(Integer)
    h: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    confidence: Mapped[float] = mapped_column(Float)  # 0..1
    kind: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(100))  # "name@version" of the model(s)
    # Per digit: {"digit", "confidence", "box": [x, y, w, h], "runner_up", "runner_up_confidence"}
    digits: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # A field a person should check, and why (low confidence, a broken template rule).
    needs_review: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    review_reason: Mapped[str | None] = mapped_column(Text)
    template: Mapped[str | None] = mapped_column(String(100))  # template the page matched
    field: Mapped[str | None] = mapped_column(String(100))  # named field of that template
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    document: Mapped[Document] = relationship(back_populates="results")

    __table_args__ = (
        CheckConstraint(_in_list("kind", RESULT_KINDS), name="kind"),
        CheckConstraint("confidence >= 0 AND confidence <= 1", name="confidence"),
        CheckConstraint("page >= 1", name="page"),
        Index("ix_results_document_id_page", "document_id", "page"),
        Index("ix_results_created_at", "created_at"),  # status: results per minute
        Index("ix_results_needs_review", "needs_review"),  # the review queue
    )

    def __repr__(self) -> str:
        return f"Result(id={self.id}, document_id={self.document_id}, text={self.text!r})"

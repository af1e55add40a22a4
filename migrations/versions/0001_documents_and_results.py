"""documents and results

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 64-bit ids on PostgreSQL; SQLite auto-increments only an INTEGER PRIMARY KEY.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
NOT_DUPLICATE = "status != 'duplicate'"


def ts(name: str, nullable: bool = True) -> sa.Column:
    """A timezone-aware timestamp (ocrd stores UTC)."""
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "documents",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("original_name", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=True),
        sa.Column("pages", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        ts("received_at", nullable=False),
        ts("started_at"),
        ts("finished_at"),
        sa.Column("duplicate_of", BIG_ID, nullable=True),
        sa.Column("claimed_by", sa.String(length=255), nullable=True),
        ts("heartbeat_at"),
        sa.CheckConstraint(
            "status IN ('pending', 'processing', 'done', 'failed', 'duplicate')",
            name=op.f("ck_documents_status"),
        ),
        sa.ForeignKeyConstraint(
            ["duplicate_of"],
            ["documents.id"],
            name=op.f("fk_documents_duplicate_of_documents"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_documents")),
    )
    op.create_index("ix_documents_finished_at", "documents", ["finished_at"])
    op.create_index("ix_documents_path", "documents", ["path"])
    op.create_index("ix_documents_status_received_at", "documents", ["status", "received_at"])
    op.create_index(
        "uq_documents_sha256_canonical",
        "documents",
        ["sha256"],
        unique=True,
        sqlite_where=sa.text(NOT_DUPLICATE),
        postgresql_where=sa.text(NOT_DUPLICATE),
    )

    op.create_table(
        "results",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("document_id", BIG_ID, nullable=False),
        sa.Column("page", sa.Integer(), nullable=False),
        sa.Column("x", sa.Integer(), nullable=False),
        sa.Column("y", sa.Integer(), nullable=False),
        sa.Column("w", sa.Integer(), nullable=False),
        sa.Column("h", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("digits", sa.JSON(), nullable=False),
        ts("created_at", nullable=False),
        sa.CheckConstraint(
            "kind IN ('handwritten', 'printed', 'unknown')", name=op.f("ck_results_kind")
        ),
        sa.CheckConstraint(
            "confidence >= 0 AND confidence <= 1", name=op.f("ck_results_confidence")
        ),
        sa.CheckConstraint("page >= 1", name=op.f("ck_results_page")),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
            name=op.f("fk_results_document_id_documents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_results")),
    )
    op.create_index("ix_results_created_at", "results", ["created_at"])
    op.create_index("ix_results_document_id_page", "results", ["document_id", "page"])


def downgrade() -> None:
    op.drop_table("results")
    op.drop_table("documents")

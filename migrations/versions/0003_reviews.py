"""reviews: a person's decision on a field (accepted / corrected / illegible)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

One row per result, removed with it. The review queue is the results with ``needs_review`` and
no review yet.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "reviews",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("result_id", BIG_ID, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("reviewer", sa.String(length=255), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('accepted', 'corrected', 'illegible')", name=op.f("ck_reviews_status")
        ),
        sa.ForeignKeyConstraint(
            ["result_id"],
            ["results.id"],
            name=op.f("fk_reviews_result_id_results"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviews")),
    )
    op.create_index("uq_reviews_result_id", "reviews", ["result_id"], unique=True)
    op.create_index("ix_reviews_reviewed_at", "reviews", ["reviewed_at"])
    # The queue, oldest first: only the marked results, in id order (a partial index stays
    # small however many sure results the table holds).
    op.create_index(
        "ix_results_review_queue",
        "results",
        ["id"],
        sqlite_where=sa.text("needs_review = 1"),
        postgresql_where=sa.text("needs_review"),
    )


def downgrade() -> None:
    op.drop_index("ix_results_review_queue", table_name="results")
    op.drop_table("reviews")

"""document notes; results needs_review, review_reason, template, field

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

``documents.notes``: warnings about a document that did not stop it (``no fields found``, a DPI
tag the content disagrees with), a JSON list of one-line strings.
``results.needs_review`` / ``review_reason``: a field a person should check (confidence below
``accept_confidence``, a broken template rule). ``results.template`` / ``field``: the template a
page matched and the named field a result belongs to.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.add_column(sa.Column("notes", sa.JSON(), nullable=True))
    with op.batch_alter_table("results") as batch:
        batch.add_column(
            sa.Column("needs_review", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("review_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("template", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("field", sa.String(length=100), nullable=True))
    op.create_index("ix_results_needs_review", "results", ["needs_review"])


def downgrade() -> None:
    op.drop_index("ix_results_needs_review", table_name="results")
    with op.batch_alter_table("results") as batch:
        batch.drop_column("field")
        batch.drop_column("template")
        batch.drop_column("review_reason")
        batch.drop_column("needs_review")
    with op.batch_alter_table("documents") as batch:
        batch.drop_column("notes")

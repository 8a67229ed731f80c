"""top-k by space: one partial index per score source

``GET /architectures?space=cnn&order_by=trained`` had no index that both filters by space and
orders by the score: Postgres walked the score's index and filtered, which for a sparse source
(a trained score on 2 % of the rows, a tabular one only on nb201 rows) meant reading most of a
million rows — up to 1.2 s. ``(space, score)`` indexes, kept only for rows that have the score,
answer such a page from the end of one small index.

Revision ID: 0007_space_score_indexes
Revises: 0006_job_resend
Create Date: 2026-12-06 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_space_score_indexes"
down_revision: str | None = "0006_job_resend"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SOURCES = ("supernet", "predictor", "trained", "tabular")


def upgrade() -> None:
    for source in SOURCES:
        column = f"score_{source}"
        op.create_index(
            f"ix_architecture_space_{source}",
            "architecture",
            ["space", column],
            postgresql_where=sa.text(f"{column} IS NOT NULL"),
            sqlite_where=sa.text(f"{column} IS NOT NULL"),
        )


def downgrade() -> None:
    for source in SOURCES:
        op.drop_index(f"ix_architecture_space_{source}", table_name="architecture")

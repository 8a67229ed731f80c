"""worker_status: each live worker's last sighting and GPU memory and utilisation

Workers serve no HTTP, so each one upserts its own row every ``heartbeat_s`` from a thread of
its own (worker/status.py), idle or not; ``GET /metrics`` reads the table at scrape time
(``nao_gpu_memory_used_bytes``, ``nao_gpu_memory_total_bytes``, ``nao_gpu_utilization_percent``,
``nao_worker_seen_age_seconds``). The GPU columns are null on a CPU worker.

Revision ID: 0008_worker_status
Revises: 0007_space_score_indexes
Create Date: 2026-12-07 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_worker_status"
down_revision: str | None = "0007_space_score_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "worker_status",
        sa.Column("worker", sa.String(length=255), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("device", sa.String(length=32), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("gpu_memory_used_bytes", sa.BigInteger(), nullable=True),
        sa.Column("gpu_memory_total_bytes", sa.BigInteger(), nullable=True),
        sa.Column("gpu_utilization_percent", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("worker", name=op.f("pk_worker_status")),
    )


def downgrade() -> None:
    op.drop_table("worker_status")

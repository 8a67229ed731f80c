"""re-sending queued jobs whose message was lost: job.enqueued_at and job.resends

``job.enqueued_at``: when the job's task was last sent (its commit, a re-queue after a lost
worker, a re-send). ``job.resends``: how many times a worker's reaper re-sent the task of a
job that stayed ``queued`` (worker/recovery.py); it spaces the re-sends out. Jobs made before
this revision have no ``enqueued_at``: the reaper reads their ``updated_at`` instead.

Revision ID: 0006_job_resend
Revises: 0005_token_owners
Create Date: 2026-12-06 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_job_resend"
down_revision: str | None = "0005_token_owners"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("job", sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("job", sa.Column("resends", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    op.drop_column("job", "resends")
    op.drop_column("job", "enqueued_at")

"""read path and worker heartbeats

``job.heartbeat_at``: a running job's worker stamps it every few seconds, so a job whose
stamp is stale belongs to a worker that is gone and may be re-queued (``worker.recovery``).

A statement-level trigger on ``architecture`` sends ``NOTIFY nao_architecture`` (delivered
at commit, once per transaction), so every API process can drop its cached top-k responses
the moment any writer (worker upserts, trained scores, COPY) commits. Postgres only: the
embedded SQLite mode has no change feed and serves top-k uncached.

Revision ID: 0002_read_path
Revises: 3e558fad1a27
Create Date: 2026-11-28 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_read_path"
down_revision: str | None = "3e558fad1a27"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNEL = "nao_architecture"


def upgrade() -> None:
    op.add_column("job", sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "CREATE FUNCTION nao_notify_architecture() RETURNS trigger LANGUAGE plpgsql AS $$"
        f" BEGIN PERFORM pg_notify('{CHANNEL}', ''); RETURN NULL; END $$"
    )
    op.execute(
        "CREATE TRIGGER architecture_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE"
        " ON architecture FOR EACH STATEMENT EXECUTE FUNCTION nao_notify_architecture()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS architecture_changed ON architecture")
        op.execute("DROP FUNCTION IF EXISTS nao_notify_architecture()")
    with op.batch_alter_table("job") as batch:
        batch.drop_column("heartbeat_at")

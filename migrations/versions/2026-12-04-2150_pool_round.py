"""what the controller learned: architecture.step_size and pool_round

``architecture.step_size``: the step size eta that moved a proposal's parent to it.

``pool_round``: one row per pool member and evaluation point of a weight-sharing search, with
the controller's prediction made just before the supernet scored it and that score; unique
per (job, round, pool id), so a round replayed after a re-delivery is recorded once.

Revision ID: 0004_pool_round
Revises: 0003_nows
Create Date: 2026-12-04 21:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_pool_round"
down_revision: str | None = "0003_nows"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("architecture", sa.Column("step_size", sa.Float(), nullable=True))
    op.create_table(
        "pool_round",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("job_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("pool_id", sa.Integer(), nullable=False),
        sa.Column("predicted", sa.Float(), nullable=True),
        sa.Column("measured", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["job.id"], name=op.f("fk_pool_round_job_id_job"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pool_round")),
        sa.UniqueConstraint("job_id", "round", "pool_id", name=op.f("uq_pool_round_job_id")),
    )
    op.create_index(op.f("ix_pool_round_job_id"), "pool_round", ["job_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_pool_round_job_id"), table_name="pool_round")
    op.drop_table("pool_round")
    # In place on SQLite too (3.35+): batch mode would copy the table, and dropping the old
    # copy with foreign keys on would fire job's and checkpoint's ON DELETE SET NULL.
    op.drop_column("architecture", "step_size")

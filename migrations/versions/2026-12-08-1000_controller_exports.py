"""controller checkpoints, exports and improved architectures

* ``checkpoint.round``: the search round a ``controller`` checkpoint was fitted in (a search
  keeps one controller per round; null for other kinds).
* ``checkpoint.source_id``: the checkpoint an ``onnx``/``torchscript``/``card`` file was built
  from (it shares the source's job, so deleting the job deletes both).
* ``architecture.parent_arch_id``: the stored architecture an ``improve`` proposal was moved
  from (``parent_id`` stays the pool id inside one search's pool).

Plain columns without foreign keys: on SQLite a foreign key needs the table rebuilt, and
rebuilding ``checkpoint`` or ``architecture`` would null every ``job`` row's link to them.

Revision ID: 0009_controller_exports
Revises: 0008_worker_status
Create Date: 2026-12-08 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_controller_exports"
down_revision: str | None = "0008_worker_status"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("checkpoint", sa.Column("round", sa.Integer(), nullable=True))
    op.add_column("checkpoint", sa.Column("source_id", _ID, nullable=True))
    op.create_index(op.f("ix_checkpoint_source_id"), "checkpoint", ["source_id"])
    op.add_column("architecture", sa.Column("parent_arch_id", _ID, nullable=True))


def downgrade() -> None:
    # SQLite >= 3.35 drops a column in place (no rebuild) when nothing indexes it
    op.drop_column("architecture", "parent_arch_id")
    op.drop_index(op.f("ix_checkpoint_source_id"), table_name="checkpoint")
    op.drop_column("checkpoint", "source_id")
    op.drop_column("checkpoint", "round")

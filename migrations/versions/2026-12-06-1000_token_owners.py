"""tokens with roles and owners: api_token.role and revoked_at, job.created_by

``api_token.role``: ``user`` or ``admin``. Tokens made before this revision could cancel any
job, so they become admins and keep what they could do; new tokens are users unless created
with ``nao token create --admin``. ``api_token.revoked_at``: a revoked token is refused.

``job.created_by``: the token that created the job (its owner), set to NULL if that token row
is ever deleted. Jobs created before this revision have no owner: only an admin cancels them.

On SQLite every column is added and dropped in place (3.35+): batch mode would copy ``job``,
and dropping the old copy with foreign keys on would cascade-delete its architectures,
metrics and checkpoints.

Revision ID: 0005_token_owners
Revises: 0004_pool_round
Create Date: 2026-12-06 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_token_owners"
down_revision: str | None = "0004_pool_round"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
FK = "fk_job_created_by_api_token"  # store.db.NAMING_CONVENTION


def upgrade() -> None:
    op.add_column(
        "api_token",
        sa.Column("role", sa.String(length=16), server_default="user", nullable=False),
    )
    op.add_column("api_token", sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE api_token SET role = 'admin'")  # the tokens there are held every right
    if op.get_bind().dialect.name == "sqlite":  # no ALTER ... ADD CONSTRAINT: name it inline
        op.execute(
            f"ALTER TABLE job ADD COLUMN created_by INTEGER CONSTRAINT {FK}"
            " REFERENCES api_token (id) ON DELETE SET NULL"
        )
    else:
        op.add_column("job", sa.Column("created_by", _Id, nullable=True))
        op.create_foreign_key(FK, "job", "api_token", ["created_by"], ["id"], ondelete="SET NULL")
    op.create_index(op.f("ix_job_created_by"), "job", ["created_by"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_job_created_by"), table_name="job")
    if op.get_bind().dialect.name != "sqlite":  # SQLite drops a column's inline constraint
        op.drop_constraint(FK, "job", type_="foreignkey")
    op.drop_column("job", "created_by")
    op.drop_column("api_token", "revoked_at")
    op.drop_column("api_token", "role")

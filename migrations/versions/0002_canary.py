"""The registry's canary: a version serving a share of chats beside the active one.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 10:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_STATUS = "status IN ('candidate', 'active', 'retired')"
NEW_STATUS = "status IN ('candidate', 'active', 'canary', 'retired')"
SHARE = "canary_share IS NULL OR (canary_share BETWEEN 1 AND 99)"


def upgrade() -> None:
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('canary_share', sa.Integer(), nullable=True))
        batch_op.drop_constraint(op.f('ck_model_versions_status'), type_='check')
        batch_op.create_check_constraint(op.f('ck_model_versions_status'), NEW_STATUS)
        batch_op.create_check_constraint(op.f('ck_model_versions_canary_share'), SHARE)
        batch_op.create_index('uq_model_versions_one_canary', ['status'], unique=True, sqlite_where=sa.text("status = 'canary'"), postgresql_where=sa.text("status = 'canary'"))


def downgrade() -> None:
    op.execute("UPDATE model_versions SET status = 'candidate' WHERE status = 'canary'")
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.drop_index('uq_model_versions_one_canary', sqlite_where=sa.text("status = 'canary'"), postgresql_where=sa.text("status = 'canary'"))
        batch_op.drop_constraint(op.f('ck_model_versions_canary_share'), type_='check')
        batch_op.drop_constraint(op.f('ck_model_versions_status'), type_='check')
        batch_op.create_check_constraint(op.f('ck_model_versions_status'), OLD_STATUS)
        batch_op.drop_column('canary_share')

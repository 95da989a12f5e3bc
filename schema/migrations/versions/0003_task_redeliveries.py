"""task redeliveries: the attempt cap for intake and admin jobs

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 09:10:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('task_redeliveries',
    sa.Column('task_id', sa.String(length=155), nullable=False),
    sa.Column('task_name', sa.String(length=80), nullable=False),
    sa.Column('redeliveries', sa.Integer(), nullable=False),
    sa.Column('first_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.PrimaryKeyConstraint('task_id', name=op.f('pk_task_redeliveries'))
    )


def downgrade() -> None:
    op.drop_table('task_redeliveries')

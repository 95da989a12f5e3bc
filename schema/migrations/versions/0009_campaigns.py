"""campaigns: channel and type, inline recipients (no list), progress counters and a stall clock

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 08:40:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('campaigns') as batch:
        batch.alter_column('list_id', existing_type=sa.Integer(), nullable=True)
        batch.add_column(sa.Column('channel', sa.String(length=8), nullable=False, server_default='SMS'))
        batch.add_column(sa.Column('message_type', sa.String(length=16), nullable=False, server_default='MKT'))
        batch.add_column(sa.Column('last_member_id', sa.BigInteger(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('processed', sa.Integer(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('refused', sa.Integer(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('started_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('progressed_at', sa.DateTime(timezone=True), nullable=True))
        batch.create_check_constraint('progress', 'processed >= 0 AND processed <= total AND refused <= processed')


def downgrade() -> None:
    with op.batch_alter_table('campaigns') as batch:
        batch.drop_constraint('progress', type_='check')
        for column in ('progressed_at', 'finished_at', 'started_at', 'refused', 'processed', 'last_member_id',
                       'message_type', 'channel'):
            batch.drop_column(column)
        batch.alter_column('list_id', existing_type=sa.Integer(), nullable=False)

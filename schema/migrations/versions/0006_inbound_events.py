"""inbound_events: provider events already applied, so a replayed webhook changes nothing

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 08:20:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('inbound_events',
    sa.Column('provider', sa.String(length=64), nullable=False),
    sa.Column('event_id', sa.String(length=200), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.PrimaryKeyConstraint('provider', 'event_id', name=op.f('pk_inbound_events'))
    )
    op.create_index(op.f('ix_inbound_events_received_at'), 'inbound_events', ['received_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_inbound_events_received_at'), table_name='inbound_events')
    op.drop_table('inbound_events')

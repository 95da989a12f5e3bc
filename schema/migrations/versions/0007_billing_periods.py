"""billing periods: merchants.billing_period/billing_day, messages.period_start, usage_periods history

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 08:20:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out, not imported: a migration must keep meaning what it meant when it was written.
PERIODS = "'WEEKLY', 'MONTHLY', 'QUARTERLY', 'YEARLY'"


def upgrade() -> None:
    with op.batch_alter_table('merchants') as batch:
        batch.add_column(sa.Column('billing_period', sa.String(length=10), server_default='MONTHLY', nullable=False))
        batch.add_column(sa.Column('billing_day', sa.Integer(), server_default='1', nullable=False))
        batch.create_check_constraint('billing_period', f"billing_period IN ({PERIODS})")
        batch.create_check_constraint('billing_day', 'billing_day BETWEEN 1 AND 28')
    op.add_column('messages', sa.Column('period_start', sa.Date(), nullable=True))
    op.create_table(
        'usage_periods',
        sa.Column('merchant_id', sa.Integer(), nullable=False),
        sa.Column('channel', sa.String(length=8), nullable=False),
        sa.Column('period_start', sa.Date(), nullable=False),
        sa.Column('period_end', sa.Date(), nullable=False),
        sa.Column('unit_limit', sa.BigInteger(), nullable=False),
        sa.Column('credits', sa.BigInteger(), nullable=False),
        sa.Column('used', sa.BigInteger(), nullable=False),
        sa.CheckConstraint("channel IN ('SMS', 'VOICE', 'EMAIL')", name=op.f('ck_usage_periods_channel')),
        sa.CheckConstraint('used >= 0', name=op.f('ck_usage_periods_used_not_negative')),
        sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_usage_periods_merchant_id_merchants'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('merchant_id', 'channel', 'period_start', name=op.f('pk_usage_periods')),
    )


def downgrade() -> None:
    op.drop_table('usage_periods')
    with op.batch_alter_table('messages') as batch:
        batch.drop_column('period_start')
    with op.batch_alter_table('merchants') as batch:
        batch.drop_constraint('billing_day', type_='check')
        batch.drop_constraint('billing_period', type_='check')
        batch.drop_column('billing_day')
        batch.drop_column('billing_period')

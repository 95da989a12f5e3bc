"""api_keys: merchant scope, IP allowlist, request rate and expiry (rotation); admin Idempotency-Keys per tenant

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 08:10:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('api_keys') as batch:
        batch.add_column(sa.Column('allowed_merchants', _JSON, nullable=False, server_default='["*"]'))
        batch.add_column(sa.Column('allowed_cidrs', _JSON, nullable=False, server_default='[]'))
        batch.add_column(sa.Column('rate_limit_per_minute', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))
    # Admin jobs' Idempotency-Key is scoped to the tenant (they may create the merchant they name).
    tenant_wide = sa.text('merchant_id IS NULL AND idempotency_key IS NOT NULL')
    op.create_index('uq_requests_tenant_idempotency', 'requests', ['tenant_id', 'idempotency_key'], unique=True,
                    postgresql_where=tenant_wide, sqlite_where=tenant_wide)


def downgrade() -> None:
    op.drop_index('uq_requests_tenant_idempotency', table_name='requests')
    with op.batch_alter_table('api_keys') as batch:
        batch.drop_column('expires_at')
        batch.drop_column('rate_limit_per_minute')
        batch.drop_column('allowed_cidrs')
        batch.drop_column('allowed_merchants')

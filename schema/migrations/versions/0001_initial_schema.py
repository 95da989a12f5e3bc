"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 19:35:59.646746
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('duplicate_guard',
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('expires_at_ms', sa.BigInteger(), nullable=False),
    sa.Column('message_id', sa.String(length=36), nullable=False),
    sa.PrimaryKeyConstraint('digest', name=op.f('pk_duplicate_guard'))
    )
    op.create_table('tenants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tenants')),
    sa.UniqueConstraint('name', name=op.f('uq_tenants_name'))
    )
    op.create_table('api_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('key_id', sa.String(length=64), nullable=False),
    sa.Column('secret_sha256', sa.String(length=64), nullable=False),
    sa.Column('allowed_channels', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('allowed_jobs', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_api_keys_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('key_id', name=op.f('uq_api_keys_key_id'))
    )
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_keys_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('merchants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('external_id', sa.String(length=64), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('webhook_secrets', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('allowed_countries', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_merchants_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_merchants')),
    sa.UniqueConstraint('tenant_id', 'external_id', name=op.f('uq_merchants_tenant_id'))
    )
    op.create_table('alerts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=True),
    sa.Column('merchant_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('dedupe_key', sa.String(length=200), nullable=False),
    sa.Column('detail', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_alerts_merchant_id_merchants'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_alerts_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alerts')),
    sa.UniqueConstraint('dedupe_key', name=op.f('uq_alerts_dedupe_key'))
    )
    op.create_table('balances',
    sa.Column('merchant_id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('unit_limit', sa.BigInteger(), nullable=False),
    sa.Column('credits', sa.BigInteger(), nullable=False),
    sa.Column('used', sa.BigInteger(), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.CheckConstraint("channel IN ('SMS', 'VOICE', 'EMAIL')", name=op.f('ck_balances_channel')),
    sa.CheckConstraint('unit_limit >= 0 AND credits >= 0', name=op.f('ck_balances_limit_credits_not_negative')),
    sa.CheckConstraint('used <= unit_limit + credits', name=op.f('ck_balances_never_overspent')),
    sa.CheckConstraint('used >= 0', name=op.f('ck_balances_used_not_negative')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_balances_merchant_id_merchants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('merchant_id', 'channel', name=op.f('pk_balances'))
    )
    op.create_table('billing_upgrades',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('merchant_id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('units', sa.BigInteger(), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('reference_id', sa.String(length=100), nullable=False),
    sa.Column('payment_method_id', sa.String(length=100), nullable=False),
    sa.Column('payment_id', sa.String(length=100), nullable=False),
    sa.Column('payment_status', sa.String(length=10), nullable=False),
    sa.Column('fulfilled', sa.Boolean(), nullable=False),
    sa.Column('note', sa.String(length=500), nullable=False),
    sa.Column('payload_sha256', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.CheckConstraint("channel IN ('SMS', 'VOICE', 'EMAIL')", name=op.f('ck_billing_upgrades_channel')),
    sa.CheckConstraint("payment_status IN ('PENDING', 'CONFIRMED', 'FAILED')", name=op.f('ck_billing_upgrades_payment_status')),
    sa.CheckConstraint('units > 0 AND amount_cents >= 0', name=op.f('ck_billing_upgrades_positive')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_billing_upgrades_merchant_id_merchants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_upgrades')),
    sa.UniqueConstraint('merchant_id', 'reference_id', name=op.f('uq_billing_upgrades_merchant_id'))
    )
    op.create_table('consents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('merchant_id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('contact', sa.String(length=320), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('source', sa.String(length=100), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.CheckConstraint("channel IN ('SMS', 'VOICE', 'EMAIL')", name=op.f('ck_consents_channel')),
    sa.CheckConstraint("status IN ('OPT_IN', 'OPT_OUT')", name=op.f('ck_consents_status')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_consents_merchant_id_merchants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consents')),
    sa.UniqueConstraint('merchant_id', 'channel', 'contact', name=op.f('uq_consents_merchant_id'))
    )
    op.create_table('contact_lists',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('merchant_id', sa.Integer(), nullable=False),
    sa.Column('external_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('source', sa.String(length=10), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_contact_lists_merchant_id_merchants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contact_lists')),
    sa.UniqueConstraint('merchant_id', 'external_id', name=op.f('uq_contact_lists_merchant_id'))
    )
    op.create_table('requests',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=True),
    sa.Column('merchant_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('idempotency_key', sa.String(length=255), nullable=True),
    sa.Column('payload_sha256', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('result', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.CheckConstraint("status IN ('ACCEPTED', 'PARTIAL', 'REFUSED')", name=op.f('ck_requests_status')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_requests_merchant_id_merchants'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_requests_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_requests')),
    sa.UniqueConstraint('merchant_id', 'idempotency_key', name=op.f('uq_requests_merchant_id'))
    )
    op.create_table('routes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('merchant_id', sa.Integer(), nullable=True),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('message_type', sa.String(length=16), nullable=False),
    sa.Column('providers', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.CheckConstraint("channel IN ('SMS', 'VOICE', 'EMAIL')", name=op.f('ck_routes_channel')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_routes_merchant_id_merchants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_routes')),
    sa.UniqueConstraint('merchant_id', 'channel', 'message_type', name=op.f('uq_routes_merchant_id'))
    )
    op.create_table('campaigns',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('merchant_id', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.String(length=36), nullable=False),
    sa.Column('list_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('scheduled_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('queued', sa.Integer(), nullable=False),
    sa.Column('cursor', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.CheckConstraint("state IN ('SCHEDULED', 'RUNNING', 'PAUSED', 'CANCELLED', 'COMPLETED')", name=op.f('ck_campaigns_state')),
    sa.ForeignKeyConstraint(['list_id'], ['contact_lists.id'], name=op.f('fk_campaigns_list_id_contact_lists')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_campaigns_merchant_id_merchants'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['request_id'], ['requests.id'], name=op.f('fk_campaigns_request_id_requests'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaigns')),
    sa.UniqueConstraint('request_id', name=op.f('uq_campaigns_request_id'))
    )
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.create_index('ix_campaigns_due', ['state', 'scheduled_at'], unique=False)

    op.create_table('contact_list_members',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('list_id', sa.Integer(), nullable=False),
    sa.Column('contact', sa.String(length=320), nullable=False),
    sa.ForeignKeyConstraint(['list_id'], ['contact_lists.id'], name=op.f('fk_contact_list_members_list_id_contact_lists'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contact_list_members')),
    sa.UniqueConstraint('list_id', 'contact', name=op.f('uq_contact_list_members_list_id'))
    )
    op.create_table('messages',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('request_id', sa.String(length=36), nullable=False),
    sa.Column('merchant_id', sa.Integer(), nullable=True),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('message_type', sa.String(length=16), nullable=False),
    sa.Column('recipient', sa.String(length=320), nullable=False),
    sa.Column('sender', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.String(length=998), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('options', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('units', sa.Integer(), nullable=False),
    sa.Column('cost_micros', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('freshness', sa.String(length=12), nullable=False),
    sa.Column('error_code', sa.String(length=8), nullable=True),
    sa.Column('error_detail', sa.String(length=500), nullable=True),
    sa.Column('provider', sa.String(length=40), nullable=True),
    sa.Column('provider_ref', sa.String(length=128), nullable=True),
    sa.Column('dispatch_attempts', sa.Integer(), nullable=False),
    sa.Column('reconcile_attempts', sa.Integer(), nullable=False),
    sa.Column('scheduled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('final_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("channel IN ('SMS', 'VOICE', 'EMAIL')", name=op.f('ck_messages_channel')),
    sa.CheckConstraint("freshness IN ('PROVISIONAL', 'FINAL')", name=op.f('ck_messages_freshness')),
    sa.CheckConstraint("status <> 'REFUSED' OR (units = 0 AND error_code IS NOT NULL)", name=op.f('ck_messages_refused_is_free')),
    sa.CheckConstraint("status IN ('QUEUED', 'SCHEDULED', 'DISPATCHING', 'SENT', 'AMBIGUOUS', 'DELIVERED', 'FAILED', 'EXPIRED', 'REFUSED')", name=op.f('ck_messages_status')),
    sa.CheckConstraint('units >= 0', name=op.f('ck_messages_units_not_negative')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_messages_merchant_id_merchants'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['request_id'], ['requests.id'], name=op.f('fk_messages_request_id_requests'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_messages'))
    )
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index('ix_messages_merchant_created', ['merchant_id', 'created_at'], unique=False)
        batch_op.create_index('ix_messages_provider_ref', ['provider', 'provider_ref'], unique=False)
        batch_op.create_index(batch_op.f('ix_messages_request_id'), ['request_id'], unique=False)
        batch_op.create_index('ix_messages_status_updated', ['status', 'updated_at'], unique=False)

    op.create_table('message_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('message_id', sa.String(length=36), nullable=False),
    sa.Column('from_state', sa.String(length=12), nullable=True),
    sa.Column('to_state', sa.String(length=12), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('detail', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_message_events_message_id_messages'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_message_events'))
    )
    with op.batch_alter_table('message_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_message_events_message_id'), ['message_id'], unique=False)

    op.create_table('outbound_callbacks',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('message_id', sa.String(length=36), nullable=False),
    sa.Column('merchant_id', sa.Integer(), nullable=False),
    sa.Column('event_status', sa.String(length=12), nullable=False),
    sa.Column('url', sa.String(length=2000), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.CheckConstraint("state IN ('PENDING', 'DELIVERED', 'FAILED')", name=op.f('ck_outbound_callbacks_state')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_outbound_callbacks_merchant_id_merchants'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_outbound_callbacks_message_id_messages'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbound_callbacks')),
    sa.UniqueConstraint('message_id', 'event_status', name=op.f('uq_outbound_callbacks_message_id'))
    )
    with op.batch_alter_table('outbound_callbacks', schema=None) as batch_op:
        batch_op.create_index('ix_outbound_callbacks_due', ['state', 'next_attempt_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('outbound_callbacks', schema=None) as batch_op:
        batch_op.drop_index('ix_outbound_callbacks_due')

    op.drop_table('outbound_callbacks')
    with op.batch_alter_table('message_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_message_events_message_id'))

    op.drop_table('message_events')
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_status_updated')
        batch_op.drop_index(batch_op.f('ix_messages_request_id'))
        batch_op.drop_index('ix_messages_provider_ref')
        batch_op.drop_index('ix_messages_merchant_created')

    op.drop_table('messages')
    op.drop_table('contact_list_members')
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_index('ix_campaigns_due')

    op.drop_table('campaigns')
    op.drop_table('routes')
    op.drop_table('requests')
    op.drop_table('contact_lists')
    op.drop_table('consents')
    op.drop_table('billing_upgrades')
    op.drop_table('balances')
    op.drop_table('alerts')
    op.drop_table('merchants')
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_keys_tenant_id'))

    op.drop_table('api_keys')
    op.drop_table('tenants')
    op.drop_table('duplicate_guard')

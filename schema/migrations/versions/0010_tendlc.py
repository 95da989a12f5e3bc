"""tendlc: 10DLC brands, campaigns, numbers; SIP credentials and presence

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 11:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('messaging_brands',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('merchant_id', sa.Integer(), nullable=False),
    sa.Column('brand_id', sa.String(length=36), nullable=False),
    sa.Column('legal_name', sa.String(length=200), nullable=False),
    sa.Column('tax_id', sa.String(length=40), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=False),
    sa.Column('vertical', sa.String(length=40), nullable=False),
    sa.Column('address', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('contact', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('reasons', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('registrar', sa.String(length=40), nullable=False),
    sa.Column('registrar_ref', sa.String(length=100), nullable=True),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("status IN ('PENDING', 'VERIFIED', 'UNVERIFIED', 'FAILED')", name=op.f('ck_messaging_brands_status')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_messaging_brands_merchant_id_merchants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_messaging_brands')),
    sa.UniqueConstraint('brand_id', name=op.f('uq_messaging_brands_brand_id')),
    sa.UniqueConstraint('merchant_id', name=op.f('uq_messaging_brands_merchant_id'))
    )
    op.create_table('sip_credentials',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('merchant_id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('domain', sa.String(length=200), nullable=False),
    sa.Column('transport', sa.String(length=4), nullable=False),
    sa.Column('secret_salt', sa.String(length=64), nullable=False),
    sa.Column('secret_sha256', sa.String(length=64), nullable=False),
    sa.Column('presence', sa.String(length=10), nullable=False),
    sa.Column('presence_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("presence IN ('AVAILABLE', 'BUSY', 'OFFLINE')", name=op.f('ck_sip_credentials_presence')),
    sa.CheckConstraint("transport IN ('UDP', 'TCP', 'TLS', 'WSS')", name=op.f('ck_sip_credentials_transport')),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_sip_credentials_merchant_id_merchants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sip_credentials')),
    sa.UniqueConstraint('username', name=op.f('uq_sip_credentials_username'))
    )
    op.create_index(op.f('ix_sip_credentials_merchant_id'), 'sip_credentials', ['merchant_id'], unique=False)
    op.create_table('messaging_campaigns',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('merchant_id', sa.Integer(), nullable=False),
    sa.Column('brand_pk', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.String(length=36), nullable=False),
    sa.Column('use_case', sa.String(length=30), nullable=False),
    sa.Column('description', sa.String(length=1000), nullable=False),
    sa.Column('sample_messages', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('opt_in', sa.String(length=1000), nullable=False),
    sa.Column('opt_out', sa.String(length=1000), nullable=False),
    sa.Column('help_text', sa.String(length=1000), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('reasons', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('registrar_ref', sa.String(length=100), nullable=True),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("status IN ('PENDING', 'ACTIVE', 'REJECTED', 'SUSPENDED')", name=op.f('ck_messaging_campaigns_status')),
    sa.CheckConstraint("use_case IN ('2FA', 'ACCOUNT_NOTIFICATION', 'CUSTOMER_CARE', 'DELIVERY_NOTIFICATION', 'MARKETING', 'MIXED')", name=op.f('ck_messaging_campaigns_use_case')),
    sa.ForeignKeyConstraint(['brand_pk'], ['messaging_brands.id'], name=op.f('fk_messaging_campaigns_brand_pk_messaging_brands'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_messaging_campaigns_merchant_id_merchants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_messaging_campaigns')),
    sa.UniqueConstraint('campaign_id', name=op.f('uq_messaging_campaigns_campaign_id'))
    )
    op.create_index(op.f('ix_messaging_campaigns_merchant_id'), 'messaging_campaigns', ['merchant_id'], unique=False)
    op.create_table('messaging_numbers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('merchant_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=20), nullable=False),
    sa.Column('source', sa.String(length=4), nullable=False),
    sa.Column('campaign_pk', sa.Integer(), nullable=True),
    sa.Column('assignment', sa.String(length=10), nullable=True),
    sa.Column('reasons', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('registrar_ref', sa.String(length=100), nullable=True),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("assignment IS NULL OR assignment IN ('PENDING', 'ASSIGNED', 'FAILED')", name=op.f('ck_messaging_numbers_assignment')),
    sa.CheckConstraint("source IN ('BUY', 'BYO')", name=op.f('ck_messaging_numbers_source')),
    sa.ForeignKeyConstraint(['campaign_pk'], ['messaging_campaigns.id'], name=op.f('fk_messaging_numbers_campaign_pk_messaging_campaigns'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['merchant_id'], ['merchants.id'], name=op.f('fk_messaging_numbers_merchant_id_merchants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_messaging_numbers')),
    sa.UniqueConstraint('number', name=op.f('uq_messaging_numbers_number'))
    )
    op.create_index(op.f('ix_messaging_numbers_merchant_id'), 'messaging_numbers', ['merchant_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_messaging_numbers_merchant_id'), table_name='messaging_numbers')
    op.drop_table('messaging_numbers')
    op.drop_index(op.f('ix_messaging_campaigns_merchant_id'), table_name='messaging_campaigns')
    op.drop_table('messaging_campaigns')
    op.drop_index(op.f('ix_sip_credentials_merchant_id'), table_name='sip_credentials')
    op.drop_table('sip_credentials')
    op.drop_table('messaging_brands')

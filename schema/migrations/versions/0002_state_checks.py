"""check constraints on history states, message types, callback states and freshness

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 09:50:00
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out, not imported: a migration must keep meaning what it meant when it was written.
STATES = "'QUEUED', 'SCHEDULED', 'DISPATCHING', 'SENT', 'AMBIGUOUS', 'DELIVERED', 'FAILED', 'EXPIRED', 'REFUSED'"
TERMINAL = "'DELIVERED', 'FAILED', 'EXPIRED', 'REFUSED'"
TYPES = "'OTP', 'TXN', 'MKT', 'REMINDER', 'TRANSACTIONAL', 'MARKETING'"

CHECKS: dict[str, list[tuple[str, str]]] = {
    "messages": [
        ("message_type", f"message_type IN ({TYPES})"),
        ("final_iff_terminal", f"(status IN ({TERMINAL})) = (freshness = 'FINAL')"),
    ],
    "message_events": [
        ("to_state", f"to_state IN ({STATES})"),
        ("from_state", f"from_state IS NULL OR from_state IN ({STATES})"),
    ],
    "outbound_callbacks": [("event_status", f"event_status IN ({TERMINAL})")],
}


def upgrade() -> None:
    for table, checks in CHECKS.items():
        with op.batch_alter_table(table) as batch:  # SQLite rebuilds the table, keeping its reflected checks
            for name, condition in checks:
                batch.create_check_constraint(name, condition)


def downgrade() -> None:
    for table, checks in CHECKS.items():
        with op.batch_alter_table(table) as batch:
            for name, _ in checks:
                batch.drop_constraint(name, type_="check")

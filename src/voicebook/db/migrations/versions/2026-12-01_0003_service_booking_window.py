"""Services get a booking window: max_days_ahead (default 365) and min_notice_minutes (default 0).

Issue 13, case 8: without a horizon a start in the year 9999 was booked, or overflowed. The columns get
server defaults, so existing rows (and rows written by code that predates them) carry the defaults and
the upgrade is a metadata change only; ``voicebook tenants load`` sets per-service values. The
downgrade drops both columns.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "services", sa.Column("max_days_ahead", sa.Integer(), server_default=sa.text("365"), nullable=False)
    )
    op.add_column(
        "services", sa.Column("min_notice_minutes", sa.Integer(), server_default=sa.text("0"), nullable=False)
    )


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN on all three (SQLite >= 3.35). Not batch mode: on SQLite that
    # recreates ``services``, and dropping the old table with foreign keys on would cascade into rows
    # that reference services.
    op.drop_column("services", "min_notice_minutes")
    op.drop_column("services", "max_days_ahead")

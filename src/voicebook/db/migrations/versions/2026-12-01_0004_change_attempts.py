"""Change attempts and appointment holds: cancel and reschedule become write-ahead attempts too.

- ``booking_attempts.intent`` (``book`` | ``cancel`` | ``reschedule``, default ``book`` so every existing
  row keeps its meaning), ``appointment_id`` (the appointment a change acts on), ``target_start_at`` (a
  reschedule's new start) and ``source_booking_uid`` (the Cal.com booking the change was sent for).
- ``appointments.change_attempt_id`` / ``change_locked_until``: the hold that serialises concurrent
  changes of one appointment (a compare-and-set, like an attempt's own lock), and ``synced_at``: when
  the reconciler last compared the appointment with its Cal.com booking.
- ``calls.from_number`` / ``to_number`` widen to 255 characters: a withheld, ``anonymous`` or SIP-URI
  caller ID is stored whole instead of failing the insert.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from voicebook.db.base import UTCDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "booking_attempts",
        sa.Column("intent", sa.String(16), server_default=sa.text("'book'"), nullable=False),
    )
    op.add_column("booking_attempts", sa.Column("appointment_id", sa.Integer(), nullable=True))
    op.add_column("booking_attempts", sa.Column("target_start_at", UTCDateTime(), nullable=True))
    op.add_column("booking_attempts", sa.Column("source_booking_uid", sa.String(64), nullable=True))
    op.create_index("ix_booking_attempts_appointment_id", "booking_attempts", ["appointment_id"])
    op.add_column("appointments", sa.Column("change_attempt_id", sa.Integer(), nullable=True))
    op.add_column("appointments", sa.Column("change_locked_until", UTCDateTime(), nullable=True))
    op.add_column("appointments", sa.Column("synced_at", UTCDateTime(), nullable=True))
    with op.batch_alter_table("calls") as batch:
        batch.alter_column("from_number", type_=sa.String(255), existing_type=sa.String(32))
        batch.alter_column("to_number", type_=sa.String(255), existing_type=sa.String(32))


def downgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.alter_column("from_number", type_=sa.String(32), existing_type=sa.String(255))
        batch.alter_column("to_number", type_=sa.String(32), existing_type=sa.String(255))
    op.drop_column("appointments", "synced_at")
    op.drop_column("appointments", "change_locked_until")
    op.drop_column("appointments", "change_attempt_id")
    op.drop_index("ix_booking_attempts_appointment_id", table_name="booking_attempts")
    op.drop_column("booking_attempts", "source_booking_uid")
    op.drop_column("booking_attempts", "target_start_at")
    op.drop_column("booking_attempts", "appointment_id")
    op.drop_column("booking_attempts", "intent")

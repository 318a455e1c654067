"""Clean up duplicate appointments, then make calcom_booking_uid unique (guard layer 4).

Every duplicate but the oldest is archived whole in appointment_duplicates_archive before it is
deleted, so the clean-up loses nothing; ``voicebook duplicates restore`` can put a row back.
On PostgreSQL the index is built CONCURRENTLY (outside a transaction) when the table holds more than
VOICEBOOK_INDEX_CONCURRENTLY_ROWS rows (default 100000) or VOICEBOOK_INDEX_CONCURRENTLY=1 is set.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 10:40:00
"""

import os
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from voicebook.db import duplicates

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "uq_appointment_calcom_booking_uid"
PLAIN_INDEX = "ix_appointments_calcom_booking_uid"


def _concurrently(conn: sa.Connection) -> bool:
    if conn.dialect.name != "postgresql":
        return False
    if os.environ.get("VOICEBOOK_INDEX_CONCURRENTLY") == "1":
        return True
    threshold = int(os.environ.get("VOICEBOOK_INDEX_CONCURRENTLY_ROWS", "100000"))
    rows = conn.execute(sa.text("SELECT COUNT(*) FROM appointments")).scalar_one()
    return int(rows) > threshold


def upgrade() -> None:
    conn = op.get_bind()
    duplicates.archive_duplicates(conn)
    duplicates.delete_archived(conn)
    if _concurrently(conn):
        with op.get_context().autocommit_block():
            op.create_index(
                INDEX,
                "appointments",
                ["calcom_booking_uid"],
                unique=True,
                postgresql_concurrently=True,
            )
    else:
        op.create_index(INDEX, "appointments", ["calcom_booking_uid"], unique=True)
    op.drop_index(PLAIN_INDEX, table_name="appointments")


def downgrade() -> None:
    op.create_index(PLAIN_INDEX, "appointments", ["calcom_booking_uid"], unique=False)
    op.drop_index(INDEX, table_name="appointments")

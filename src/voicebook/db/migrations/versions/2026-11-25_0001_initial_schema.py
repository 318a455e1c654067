"""Initial schema: every table; appointments.calcom_booking_uid gets a plain index only.

Its unique index arrives in 0002 together with the duplicate clean-up, so that revision is what
makes a database that already holds duplicates safe.

Revision ID: 0001
Revises:
Create Date: 2026-11-25 10:19:25.569454
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from voicebook.db.base import UTCDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "appointment_duplicates_archive",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("original_id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=True),
        sa.Column("service_id", sa.Integer(), nullable=True),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("call_id", sa.String(length=128), nullable=True),
        sa.Column("attempt_id", sa.Integer(), nullable=True),
        sa.Column("calcom_booking_uid", sa.String(length=64), nullable=False),
        sa.Column("event_type_id", sa.BigInteger(), nullable=True),
        sa.Column("start_at", UTCDateTime(), nullable=False),
        sa.Column("end_at", UTCDateTime(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("attendee_name", sa.String(length=200), nullable=True),
        sa.Column("attendee_email", sa.String(length=254), nullable=True),
        sa.Column("rescheduled_from_uid", sa.String(length=64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("kept_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("archived_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointment_duplicates_archive")),
    )
    with op.batch_alter_table("appointment_duplicates_archive", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_appointment_duplicates_archive_calcom_booking_uid"),
            ["calcom_booking_uid"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_appointment_duplicates_archive_original_id"),
            ["original_id"],
            unique=False,
        )

    op.create_table(
        "companies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("email_domain", sa.String(length=200), nullable=False),
        sa.Column("locale", sa.String(length=8), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_companies")),
        sa.UniqueConstraint("slug", name="uq_company_slug"),
    )
    op.create_table(
        "guard_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("layer", sa.String(length=32), nullable=False),
        sa.Column("verdict", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("call_id", sa.String(length=128), nullable=True),
        sa.Column("attempt_id", sa.String(length=32), nullable=True),
        sa.Column("company_id", sa.Integer(), nullable=True),
        sa.Column("calcom_booking_uid", sa.String(length=64), nullable=True),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guard_events")),
    )
    with op.batch_alter_table("guard_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_guard_events_call_id"), ["call_id"], unique=False)
        batch_op.create_index("ix_guard_events_created_at", ["created_at"], unique=False)

    op.create_table(
        "calls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("retell_call_id", sa.String(length=128), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=True),
        sa.Column("agent_id", sa.String(length=128), nullable=True),
        sa.Column("from_number", sa.String(length=32), nullable=True),
        sa.Column("to_number", sa.String(length=32), nullable=True),
        sa.Column("direction", sa.String(length=16), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("duration_ms", sa.BigInteger(), nullable=True),
        sa.Column("disconnection_reason", sa.String(length=64), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("successful", sa.Boolean(), nullable=True),
        sa.Column("analyzed_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_calls_company_id_companies"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calls")),
        sa.UniqueConstraint("retell_call_id", name="uq_call_retell_call_id"),
    )
    op.create_table(
        "customers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_customers_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
        sa.UniqueConstraint("company_id", "phone", name="uq_customer_company_phone"),
    )
    op.create_table(
        "phone_numbers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_phone_numbers_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_phone_numbers")),
        sa.UniqueConstraint("number", name="uq_phone_number_number"),
    )
    op.create_table(
        "services",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("aliases", sa.JSON(), nullable=False),
        sa.Column("event_type_id", sa.BigInteger(), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("round_robin", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_services_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_services")),
        sa.UniqueConstraint("company_id", "name", name="uq_service_company_name"),
    )
    op.create_table(
        "booking_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("call_id", sa.String(length=128), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=True),
        sa.Column("event_type_id", sa.BigInteger(), nullable=False),
        sa.Column("start_at", UTCDateTime(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("attendee_name", sa.String(length=200), nullable=False),
        sa.Column("attendee_email", sa.String(length=254), nullable=False),
        sa.Column("attendee_phone", sa.String(length=32), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("request_snapshot", sa.JSON(), nullable=True),
        sa.Column("answer_snapshot", sa.JSON(), nullable=True),
        sa.Column("calcom_booking_uid", sa.String(length=64), nullable=True),
        sa.Column("guard_verdict", sa.String(length=64), nullable=True),
        sa.Column("first_sent_at", UTCDateTime(), nullable=True),
        sa.Column("locked_until", UTCDateTime(), nullable=True),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("orphan_cancelled_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_booking_attempts_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["services.id"],
            name=op.f("fk_booking_attempts_service_id_services"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_booking_attempts")),
        sa.UniqueConstraint("idempotency_key", name="uq_booking_attempt_idempotency_key"),
        sa.UniqueConstraint("public_id", name="uq_booking_attempt_public_id"),
    )
    with op.batch_alter_table("booking_attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_booking_attempts_call_id"), ["call_id"], unique=False)
        batch_op.create_index("ix_booking_attempts_state_updated_at", ["state", "updated_at"], unique=False)

    op.create_table(
        "appointments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=True),
        sa.Column("service_id", sa.Integer(), nullable=True),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("call_id", sa.String(length=128), nullable=True),
        sa.Column("attempt_id", sa.Integer(), nullable=True),
        sa.Column("calcom_booking_uid", sa.String(length=64), nullable=False),
        sa.Column("event_type_id", sa.BigInteger(), nullable=True),
        sa.Column("start_at", UTCDateTime(), nullable=False),
        sa.Column("end_at", UTCDateTime(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("attendee_name", sa.String(length=200), nullable=True),
        sa.Column("attendee_email", sa.String(length=254), nullable=True),
        sa.Column("rescheduled_from_uid", sa.String(length=64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["attempt_id"],
            ["booking_attempts.id"],
            name=op.f("fk_appointments_attempt_id_booking_attempts"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_appointments_company_id_companies"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_appointments_customer_id_customers"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["services.id"],
            name=op.f("fk_appointments_service_id_services"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointments")),
    )
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_appointments_calcom_booking_uid"), ["calcom_booking_uid"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_appointments_call_id"), ["call_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_appointments_call_id"))
        batch_op.drop_index(batch_op.f("ix_appointments_calcom_booking_uid"))

    op.drop_table("appointments")
    with op.batch_alter_table("booking_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_booking_attempts_state_updated_at")
        batch_op.drop_index(batch_op.f("ix_booking_attempts_call_id"))

    op.drop_table("booking_attempts")
    op.drop_table("services")
    op.drop_table("phone_numbers")
    op.drop_table("customers")
    op.drop_table("calls")
    with op.batch_alter_table("guard_events", schema=None) as batch_op:
        batch_op.drop_index("ix_guard_events_created_at")
        batch_op.drop_index(batch_op.f("ix_guard_events_call_id"))

    op.drop_table("guard_events")
    op.drop_table("companies")
    with op.batch_alter_table("appointment_duplicates_archive", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_appointment_duplicates_archive_original_id"))
        batch_op.drop_index(batch_op.f("ix_appointment_duplicates_archive_calcom_booking_uid"))

    op.drop_table("appointment_duplicates_archive")

"""The tables of the data model. Every guarantee is a named constraint, so it holds on all three engines."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from voicebook.db.base import Base, UTCDateTime, utc_now


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now, onupdate=utc_now)


class Company(TimestampMixin, Base):
    __tablename__ = "companies"
    __table_args__ = (UniqueConstraint("slug", name="uq_company_slug"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))
    email_domain: Mapped[str] = mapped_column(String(200))
    locale: Mapped[str] = mapped_column(String(8), default="de")
    country: Mapped[str] = mapped_column(String(2), default="DE")


class PhoneNumber(Base):
    __tablename__ = "phone_numbers"
    __table_args__ = (UniqueConstraint("number", name="uq_phone_number_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Indexed (0005): `tenants load` deletes a company's stale numbers by company, 10 000 times.
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"), index=True)
    number: Mapped[str] = mapped_column(String(32))


class Service(TimestampMixin, Base):
    __tablename__ = "services"
    __table_args__ = (UniqueConstraint("company_id", "name", name="uq_service_company_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    aliases: Mapped[list[str]] = mapped_column(JSON, default=list)
    event_type_id: Mapped[int] = mapped_column(BigInteger)
    duration_minutes: Mapped[int] = mapped_column(Integer)
    round_robin: Mapped[bool] = mapped_column(Boolean, default=False)
    # The booking window (booking/window.py; defaults = its DEFAULT_* constants, checked by a test).
    # Server defaults so rows written before migration 0003, or by older code, read as the defaults.
    max_days_ahead: Mapped[int] = mapped_column(Integer, default=365, server_default=text("365"))
    min_notice_minutes: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))


class Customer(TimestampMixin, Base):
    __tablename__ = "customers"
    __table_args__ = (UniqueConstraint("company_id", "phone", name="uq_customer_company_phone"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    phone: Mapped[str] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))


class Call(TimestampMixin, Base):
    __tablename__ = "calls"
    __table_args__ = (UniqueConstraint("retell_call_id", name="uq_call_retell_call_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    retell_call_id: Mapped[str] = mapped_column(String(128))
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id", ondelete="SET NULL"))
    agent_id: Mapped[str | None] = mapped_column(String(128))
    from_number: Mapped[str | None] = mapped_column(String(255))  # raw caller ID: may be a SIP URI
    to_number: Mapped[str | None] = mapped_column(String(255))
    direction: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(32), default="ongoing")
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    duration_ms: Mapped[int | None] = mapped_column(BigInteger)
    disconnection_reason: Mapped[str | None] = mapped_column(String(64))
    summary: Mapped[str | None] = mapped_column(Text)
    successful: Mapped[bool | None] = mapped_column(Boolean)
    analyzed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class BookingAttempt(TimestampMixin, Base):
    """The write-ahead record of one booking intent; its unique key makes a retry a replay."""

    __tablename__ = "booking_attempts"
    __table_args__ = (
        UniqueConstraint("idempotency_key", name="uq_booking_attempt_idempotency_key"),
        UniqueConstraint("public_id", name="uq_booking_attempt_public_id"),
        Index("ix_booking_attempts_state_updated_at", "state", "updated_at"),
        Index("ix_booking_attempts_appointment_id", "appointment_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32))
    idempotency_key: Mapped[str] = mapped_column(String(255))
    call_id: Mapped[str] = mapped_column(String(128), index=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    service_id: Mapped[int | None] = mapped_column(ForeignKey("services.id", ondelete="SET NULL"))
    event_type_id: Mapped[int] = mapped_column(BigInteger)
    start_at: Mapped[datetime] = mapped_column(UTCDateTime())
    state: Mapped[str] = mapped_column(String(16))
    fingerprint: Mapped[str] = mapped_column(String(64))
    attendee_name: Mapped[str] = mapped_column(String(200))
    attendee_email: Mapped[str] = mapped_column(String(254))
    attendee_phone: Mapped[str | None] = mapped_column(String(32))
    notes: Mapped[str | None] = mapped_column(Text)
    request_snapshot: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    answer_snapshot: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    calcom_booking_uid: Mapped[str | None] = mapped_column(String(64))
    guard_verdict: Mapped[str | None] = mapped_column(String(64))
    first_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    tries: Mapped[int] = mapped_column(Integer, default=0)
    orphan_cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    intent: Mapped[str] = mapped_column(String(16), default="book", server_default="book")
    appointment_id: Mapped[int | None] = mapped_column(Integer)  # a change's appointment
    target_start_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # a reschedule's new start
    source_booking_uid: Mapped[str | None] = mapped_column(String(64))  # the booking a change was sent for


class Appointment(TimestampMixin, Base):
    __tablename__ = "appointments"
    __table_args__ = (
        # Layer 4: one local appointment per Cal.com booking, whatever races above it.
        Index("uq_appointment_calcom_booking_uid", "calcom_booking_uid", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id", ondelete="SET NULL"))
    service_id: Mapped[int | None] = mapped_column(ForeignKey("services.id", ondelete="SET NULL"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"))
    call_id: Mapped[str | None] = mapped_column(String(128), index=True)
    attempt_id: Mapped[int | None] = mapped_column(ForeignKey("booking_attempts.id", ondelete="SET NULL"))
    calcom_booking_uid: Mapped[str] = mapped_column(String(64))
    event_type_id: Mapped[int | None] = mapped_column(BigInteger)
    start_at: Mapped[datetime] = mapped_column(UTCDateTime())
    end_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16), default="booked")
    source: Mapped[str] = mapped_column(String(16), default="voicebook")
    attendee_name: Mapped[str | None] = mapped_column(String(200))
    attendee_email: Mapped[str | None] = mapped_column(String(254))
    rescheduled_from_uid: Mapped[str | None] = mapped_column(String(64))
    # The hold that serialises changes: the change attempt working on this appointment, until when.
    change_attempt_id: Mapped[int | None] = mapped_column(Integer)
    change_locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # last compared with Cal.com


class AppointmentDuplicateArchive(Base):
    """Whole copies of appointments removed by the duplicate clean-up, so nothing is lost."""

    __tablename__ = "appointment_duplicates_archive"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    original_id: Mapped[int] = mapped_column(Integer, index=True)
    company_id: Mapped[int | None] = mapped_column(Integer)
    service_id: Mapped[int | None] = mapped_column(Integer)
    customer_id: Mapped[int | None] = mapped_column(Integer)
    call_id: Mapped[str | None] = mapped_column(String(128))
    attempt_id: Mapped[int | None] = mapped_column(Integer)
    calcom_booking_uid: Mapped[str] = mapped_column(String(64), index=True)
    event_type_id: Mapped[int | None] = mapped_column(BigInteger)
    start_at: Mapped[datetime] = mapped_column(UTCDateTime())
    end_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    attendee_name: Mapped[str | None] = mapped_column(String(200))
    attendee_email: Mapped[str | None] = mapped_column(String(254))
    rescheduled_from_uid: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    kept_id: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(200))
    archived_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)


class GuardEvent(Base):
    """Audit of every guard verdict, replay and reconciler action."""

    __tablename__ = "guard_events"
    __table_args__ = (Index("ix_guard_events_created_at", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utc_now)
    layer: Mapped[str] = mapped_column(String(32))
    verdict: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    call_id: Mapped[str | None] = mapped_column(String(128), index=True)
    attempt_id: Mapped[str | None] = mapped_column(String(32))
    company_id: Mapped[int | None] = mapped_column(Integer)
    calcom_booking_uid: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class CompanyCredential(TimestampMixin, Base):
    """A company's own Cal.com and Retell credentials (db/credentials.py): secrets only sealed.

    ``sealed`` is a Fernet token (``VOICEBOOK_SECRET_KEY``) over a JSON object of every secret; the plain
    columns hold only what may be shown. ``state`` is ``connected`` or ``disconnected`` (a credential
    Cal.com refused or revoked): a disconnected company is not asked again until its credential changes.
    """

    __tablename__ = "company_credentials"

    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"), primary_key=True)
    calcom_base_url: Mapped[str | None] = mapped_column(String(255))
    calcom_team_id: Mapped[int | None] = mapped_column(BigInteger)
    calcom_auth: Mapped[str] = mapped_column(String(16), default="none")
    oauth_client_id: Mapped[str | None] = mapped_column(String(200))
    sealed: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="connected", server_default="connected")
    state_reason: Mapped[str | None] = mapped_column(String(200))
    state_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class RateBudget(Base):
    """A token bucket per Cal.com credential (calcom/budget.py), shared by every worker.

    ``key`` is a hash of base URL and credential, never the credential. Times are epoch seconds.
    """

    __tablename__ = "rate_budgets"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    tokens: Mapped[float] = mapped_column(Double)
    refilled_at: Mapped[float] = mapped_column(Double)
    blocked_until: Mapped[float] = mapped_column(Double, default=0.0)

"""Replay the seed's incident against the sandbox: two callers without e-mail, one round-robin slot,
35 minutes apart on the sandbox clock — once as we run today, once the way the seed ran.

It uses a scratch SQLite database and the in-process sandbox, so it needs no server and no account.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select

from voicebook.booking import flow
from voicebook.booking.policy import BookingPolicy, GuardPolicy
from voicebook.booking.tenancy import CallContext, ServiceRef, Tenant
from voicebook.bootstrap import sandbox_gateway
from voicebook.calcom.sandbox import Sandbox, event_type_from_service
from voicebook.db import migrate
from voicebook.db.models import Appointment, Company, GuardEvent, PhoneNumber, Service
from voicebook.db.session import make_engine, make_sessionmaker

EVENT_TYPE = 2563194
SEED_SHARED_EMAIL = "termin@salon-mitte.example"


@dataclass
class CallReport:
    call_id: str
    calcom_uid: str | None
    calcom_created_at: str | None
    status: str
    answered_uid: str | None
    verdicts: list[str] = field(default_factory=list)


@dataclass
class RunReport:
    title: str
    calls: list[CallReport]
    appointments: list[tuple[str, str | None]]  # (uid, call id)
    sandbox_bookings: int

    @property
    def foreign_booking_handed_out(self) -> bool:
        owners = dict(self.appointments)
        return any(c.answered_uid and owners.get(c.answered_uid) not in (None, c.call_id) for c in self.calls)


def _next_slot(tz: ZoneInfo) -> datetime:
    day = datetime.now(tz) + timedelta(days=2)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day.replace(hour=11, minute=0, second=0, microsecond=0).astimezone(ZoneInfo("UTC"))


async def _run(title: str, policy: BookingPolicy, workdir: Path) -> RunReport:
    url = f"sqlite:///{workdir / (title.split()[0] + '.db')}"
    await migrate.upgrade_async(url)
    engine = make_engine(url)
    sessionmaker = make_sessionmaker(engine)
    sandbox = Sandbox(api_key="cal_sandbox_local")
    sandbox.add_event_type(event_type_from_service(EVENT_TYPE, "Beratung", 45, True, "Europe/Berlin"))
    gateway, http = sandbox_gateway(sandbox)
    try:
        async with sessionmaker() as session, session.begin():
            company = Company(
                slug="salon-mitte",
                name="Salon Mitte",
                timezone="Europe/Berlin",
                email_domain="salon-mitte.example",
                locale="de",
                country="DE",
            )
            session.add(company)
            await session.flush()
            session.add(PhoneNumber(company_id=company.id, number="+49301234567"))
            service = Service(
                company_id=company.id,
                name="Beratung",
                aliases=[],
                event_type_id=EVENT_TYPE,
                duration_minutes=45,
                round_robin=True,
            )
            session.add(service)
            await session.flush()
            tenant = Tenant(
                company.id, company.slug, company.name, company.timezone, company.email_domain, "de", "DE"
            )
            ref = ServiceRef(service.id, service.name, EVENT_TYPE, 45)
        start = _next_slot(ZoneInfo("Europe/Berlin"))
        calls = []
        for call_id, phone, name in (
            ("call_687", "+491701111687", "Erste Anruferin"),
            ("call_688", "+491702222688", "Zweiter Anrufer"),
        ):
            known = {b.uid for b in sandbox.bookings}
            outcome = await flow.book(
                sessionmaker,
                gateway,
                policy,
                tenant,
                CallContext(call_id, phone, "+49301234567"),
                flow.BookArgs(ref, start, name),
            )
            async with sessionmaker() as session:
                verdicts = list(
                    (
                        await session.execute(
                            select(GuardEvent.verdict)
                            .where(GuardEvent.call_id == call_id)
                            .order_by(GuardEvent.id)
                        )
                    ).scalars()
                )
            returned = next((b for b in sandbox.bookings if b.uid not in known), None)
            if returned is None and sandbox.bookings:
                returned = sandbox.bookings[0]  # mechanism A: Cal.com answered with the existing booking
            calls.append(
                CallReport(
                    call_id,
                    returned.uid if returned else None,
                    returned.created_at.isoformat() if returned else None,
                    outcome.status,
                    outcome.appointment.calcom_booking_uid if outcome.appointment else None,
                    verdicts,
                )
            )
            sandbox.clock.advance(timedelta(minutes=35))
        async with sessionmaker() as session:
            rows = (await session.execute(select(Appointment.calcom_booking_uid, Appointment.call_id))).all()
        return RunReport(title, calls, [(u, c) for u, c in rows], len(sandbox.bookings))
    finally:
        await http.aclose()
        await engine.dispose()


async def replay_incident() -> list[RunReport]:
    with tempfile.TemporaryDirectory(prefix="voicebook-simulate-") as tmp:
        today = BookingPolicy()
        seed = BookingPolicy(guards=GuardPolicy(enabled=False), fallback_email_template=SEED_SHARED_EMAIL)
        shared_guarded = BookingPolicy(fallback_email_template=SEED_SHARED_EMAIL)
        return [
            await _run("today: per-call e-mail, guards on", today, Path(tmp)),
            await _run("shared: shared fallback e-mail, guards on", shared_guarded, Path(tmp)),
            await _run("seed: shared fallback e-mail, guards off (layer 4 only)", seed, Path(tmp)),
        ]

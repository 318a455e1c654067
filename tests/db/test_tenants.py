"""Tenants YAML: idempotent upsert, and broken files refused whole with one line naming the problem."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebook.booking.window import DEFAULT_MAX_DAYS_AHEAD, DEFAULT_MIN_NOTICE_MINUTES, BookingWindow
from voicebook.db.models import Company, PhoneNumber, Service
from voicebook.db.tenants import ServiceSpec, load_tenants, parse_tenants
from voicebook.errors import TenantFileError

EXAMPLE = Path(__file__).parents[2] / "examples" / "tenants.yaml"
GOOD = """
companies:
  - slug: salon-mitte
    name: Salon Mitte
    timezone: Europe/Berlin
    email_domain: salon-mitte.example
    phone_numbers: ["+49301234567"]
    services:
      - {name: Haarschnitt, aliases: [Herrenschnitt], event_type_id: 2563193, duration_minutes: 30}
"""


async def _counts(sm: async_sessionmaker[AsyncSession]) -> tuple[int, int, int]:
    counts = []
    async with sm() as s:
        for model in (Company, PhoneNumber, Service):
            counts.append(int((await s.execute(select(func.count()).select_from(model))).scalar_one()))
    return counts[0], counts[1], counts[2]


@pytest.mark.asyncio
class TestLoadTenants:
    async def test_loading_twice_changes_nothing(
        self, sessionmaker: async_sessionmaker[AsyncSession]
    ) -> None:
        spec = parse_tenants(EXAMPLE)
        async with sessionmaker() as s, s.begin():
            first = await load_tenants(s, spec)
        async with sessionmaker() as s, s.begin():
            second = await load_tenants(s, spec)
        assert first.changed > 0
        assert second.changed == 0
        assert await _counts(sessionmaker) == (1, 1, 2)

    async def test_changed_service_is_updated_in_place(
        self, sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
    ) -> None:
        path = tmp_path / "t.yaml"
        path.write_text(GOOD)
        async with sessionmaker() as s, s.begin():
            await load_tenants(s, parse_tenants(path))
        path.write_text(GOOD.replace("duration_minutes: 30", "duration_minutes: 45"))
        async with sessionmaker() as s, s.begin():
            summary = await load_tenants(s, parse_tenants(path))
        assert summary.changed == 1
        async with sessionmaker() as s:
            assert (await s.execute(select(Service.duration_minutes))).scalar_one() == 45

    async def test_booking_window_is_stored_and_updated(
        self, sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
    ) -> None:
        path = tmp_path / "t.yaml"
        path.write_text(GOOD)
        async with sessionmaker() as s, s.begin():
            await load_tenants(s, parse_tenants(path))
        window = select(Service.max_days_ahead, Service.min_notice_minutes)
        async with sessionmaker() as s:
            assert tuple((await s.execute(window)).one()) == (365, 0)
        path.write_text(
            GOOD.replace(
                "duration_minutes: 30}", "duration_minutes: 30, max_days_ahead: 30, min_notice_minutes: 60}"
            )
        )
        async with sessionmaker() as s, s.begin():
            assert (await load_tenants(s, parse_tenants(path))).changed == 1
        async with sessionmaker() as s:
            assert tuple((await s.execute(window)).one()) == (30, 60)

    async def test_a_number_owned_by_another_company_is_refused_naming_the_owner(
        self, sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
    ) -> None:
        first, second = tmp_path / "first.yaml", tmp_path / "second.yaml"
        first.write_text(GOOD)
        second.write_text(GOOD.replace("salon-mitte", "salon-ost").replace("Salon Mitte", "Salon Ost"))
        async with sessionmaker() as s, s.begin():
            await load_tenants(s, parse_tenants(first))
        with pytest.raises(TenantFileError) as refused:
            async with sessionmaker() as s, s.begin():
                await load_tenants(s, parse_tenants(second))
        assert "+49301234567 belongs to company 'salon-mitte'" in refused.value.message
        assert "--move-numbers" in refused.value.message
        async with sessionmaker() as s:
            owners = (
                await s.execute(select(Company.slug).join(PhoneNumber, PhoneNumber.company_id == Company.id))
            ).scalars()
            assert list(owners) == ["salon-mitte"]
            assert await _counts(sessionmaker) == (1, 1, 1)  # the refused file wrote nothing

    async def test_move_numbers_moves_a_number_on_purpose(
        self, sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
    ) -> None:
        first, second = tmp_path / "first.yaml", tmp_path / "second.yaml"
        first.write_text(GOOD)
        second.write_text(GOOD.replace("salon-mitte", "salon-ost").replace("Salon Mitte", "Salon Ost"))
        async with sessionmaker() as s, s.begin():
            await load_tenants(s, parse_tenants(first))
        async with sessionmaker() as s, s.begin():
            await load_tenants(s, parse_tenants(second), move_numbers=True)
        async with sessionmaker() as s:
            owners = (
                await s.execute(select(Company.slug).join(PhoneNumber, PhoneNumber.company_id == Company.id))
            ).scalars()
            assert list(owners) == ["salon-ost"]


def test_booking_window_defaults_and_values(tmp_path: Path) -> None:
    """Issue 13, case 8: 365 days ahead and no minimum notice unless the file says otherwise."""
    path = tmp_path / "tenants.yaml"
    path.write_text(
        GOOD
        + "      - {name: Färben, event_type_id: 7, duration_minutes: 60, max_days_ahead: 90,"
        + " min_notice_minutes: 120}\n"
    )
    plain, windowed = parse_tenants(path).companies[0].services
    assert (plain.max_days_ahead, plain.min_notice_minutes) == (
        DEFAULT_MAX_DAYS_AHEAD,
        DEFAULT_MIN_NOTICE_MINUTES,
    )
    assert (windowed.max_days_ahead, windowed.min_notice_minutes) == (90, 120)
    assert BookingWindow(windowed.max_days_ahead, windowed.min_notice_minutes)  # a window the domain accepts


def test_model_defaults_match_the_domain() -> None:
    """The columns cannot import booking/window.py (db sits below booking); this keeps them equal."""
    columns = Service.__table__.c  # type: ignore[attr-defined]
    assert columns.max_days_ahead.default.arg == DEFAULT_MAX_DAYS_AHEAD
    assert columns.min_notice_minutes.default.arg == DEFAULT_MIN_NOTICE_MINUTES
    assert columns.max_days_ahead.server_default.arg.text == str(DEFAULT_MAX_DAYS_AHEAD)
    assert columns.min_notice_minutes.server_default.arg.text == str(DEFAULT_MIN_NOTICE_MINUTES)
    assert ServiceSpec.model_fields["max_days_ahead"].default == DEFAULT_MAX_DAYS_AHEAD
    assert ServiceSpec.model_fields["min_notice_minutes"].default == DEFAULT_MIN_NOTICE_MINUTES


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        (
            lambda t: t.replace("    name: Salon Mitte", "    name: Salon Mitte\n    colour: red"),
            "colour: unknown key",
        ),
        (lambda t: t.replace("Europe/Berlin", "Europe/Berln"), "timezone: unknown time zone 'Europe/Berln'"),
        (
            lambda t: t + t.split("companies:\n", 1)[1].replace("slug: salon-mitte", "slug: salon-ost"),
            "duplicate phone number +49301234567",
        ),
        (lambda t: t.replace('["+49301234567"]', '["12345"]'), "phone_numbers"),
        (lambda t: t.replace("companies:", "companies: [oops"), "not valid YAML"),
        (lambda t: t.replace("event_type_id: 2563193", "event_type_id: -1"), "event_type_id"),
        (
            lambda t: t.replace("duration_minutes: 30}", "duration_minutes: 30, max_days_ahead: 0}"),
            "services[0].max_days_ahead: Input should be greater than or equal to 1",
        ),
        (
            lambda t: t.replace("duration_minutes: 30}", "duration_minutes: 30, max_days_ahead: 3651}"),
            "services[0].max_days_ahead: Input should be less than or equal to 3650",
        ),
        (
            lambda t: t.replace("duration_minutes: 30}", "duration_minutes: 30, min_notice_minutes: -5}"),
            "services[0].min_notice_minutes: Input should be greater than or equal to 0",
        ),
        (
            lambda t: t.replace(
                "duration_minutes: 30}", "duration_minutes: 30, max_days_ahead: 1, min_notice_minutes: 1440}"
            ),
            "services[0]: min_notice_minutes (1440) must be shorter than max_days_ahead (1 days)",
        ),
    ],
    ids=[
        "unknown-key",
        "bad-zone",
        "duplicate-number",
        "bad-number",
        "broken-yaml",
        "bad-event-type",
        "window-zero-days",
        "window-too-far",
        "notice-negative",
        "notice-longer-than-window",
    ],
)
def test_broken_file_is_refused_with_one_line(tmp_path: Path, mutation: object, expected: str) -> None:
    path = tmp_path / "tenants.yaml"
    path.write_text(mutation(GOOD))  # type: ignore[operator]
    with pytest.raises(TenantFileError) as info:
        parse_tenants(path)
    message = info.value.message
    assert "\n" not in message
    assert str(path) in message
    assert expected in message

"""The operator's page and its JSON over HTTP: who gets in (401/503/200), what they see, on all databases."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import SecretStr
from sqlalchemy import insert, select
from tests.e2e.harness import running_service

from voicebook.api.admin.auth import COOKIE, session_cookie
from voicebook.api.admin.chart import build_chart
from voicebook.api.admin.language import pick_language
from voicebook.db.models import BookingAttempt, GuardEvent
from voicebook.reporting.dashboard import HourBucket

TOKEN = "admin-test-token-5f1c"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BERLIN = ZoneInfo("Europe/Berlin")


def cookie(value: str) -> dict[str, str]:
    return {"Cookie": f"{COOKIE}={value}"}


def next_weekday_at(hour: int) -> str:
    day = datetime.now(BERLIN) + timedelta(days=2)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day.replace(hour=hour, minute=0, second=0, microsecond=0).strftime("%Y-%m-%dT%H:%M")


@pytest.mark.asyncio
class TestAccess:
    async def test_unset_token_disables_everything_with_503(self, db_url: str) -> None:
        async with running_service(db_url) as env:
            for path in ("/api/summary", "/api/guard-events", "/api/attempts/stuck"):
                r = await env.client.get(path, headers=AUTH)
                assert r.status_code == 503
                assert r.json()["detail"] == "admin disabled: set VOICEBOOK_ADMIN_TOKEN"
            page = await env.client.get("/admin")
            assert page.status_code == 503
            assert "VOICEBOOK_ADMIN_TOKEN" in page.text
            login = await env.client.post("/admin/login", data={"token": "anything"})
            assert login.status_code == 503

    async def test_missing_or_wrong_token_is_401_with_bearer_challenge(self, db_url: str) -> None:
        async with running_service(db_url, admin_token=SecretStr(TOKEN)) as env:
            for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {TOKEN}"}):
                for path in ("/api/summary", "/api/guard-events", "/api/attempts/stuck"):
                    r = await env.client.get(path, headers=headers)
                    assert r.status_code == 401, (path, headers)
                    assert r.headers["www-authenticate"] == "Bearer"
            forged = await env.client.get("/api/summary", headers=cookie("1.deadbeef"))
            assert forged.status_code == 401
            other_key = await env.client.get("/api/summary", headers=cookie(session_cookie("other-token")))
            assert other_key.status_code == 401
            expired = session_cookie(TOKEN, issued=int(datetime.now(UTC).timestamp()) - 13 * 3600)
            assert (await env.client.get("/api/summary", headers=cookie(expired))).status_code == 401

    async def test_page_without_auth_shows_login_form_in_german_by_default(self, db_url: str) -> None:
        async with running_service(db_url, admin_token=SecretStr(TOKEN)) as env:
            r = await env.client.get("/admin")
            assert r.status_code == 401
            assert r.headers["www-authenticate"] == "Bearer"
            assert 'action="/admin/login"' in r.text
            assert "Anmelden" in r.text
            en = await env.client.get("/admin", headers={"Accept-Language": "en-GB,en;q=0.9,de;q=0.5"})
            assert "Sign in" in en.text

    async def test_login_sets_strict_httponly_cookie_that_opens_page_and_api(self, db_url: str) -> None:
        async with running_service(db_url, admin_token=SecretStr(TOKEN)) as env:
            wrong = await env.client.post("/admin/login", data={"token": "wrong"})
            assert wrong.status_code == 401
            assert "Falsches Token" in wrong.text
            assert COOKIE not in wrong.cookies

            r = await env.client.post("/admin/login", data={"token": TOKEN, "lang": "en"})
            assert r.status_code == 303
            assert r.headers["location"] == "/admin?lang=en"
            set_cookie = r.headers["set-cookie"]
            assert "HttpOnly" in set_cookie
            assert "SameSite=strict" in set_cookie or "SameSite=Strict" in set_cookie
            assert TOKEN not in set_cookie  # an HMAC, never the token itself

            page = await env.client.get("/admin?lang=en")  # the client keeps the cookie
            assert page.status_code == 200
            assert "Guard events" in page.text
            assert (await env.client.get("/api/summary")).status_code == 200

            out = await env.client.post("/admin/logout")
            assert out.status_code == 303
            env.client.cookies.clear()
            assert (await env.client.get("/admin")).status_code == 401


@pytest.mark.asyncio
class TestContent:
    async def test_booking_and_rejection_show_up_in_json_and_page_masked(self, db_url: str) -> None:
        async with running_service(db_url, admin_token=SecretStr(TOKEN)) as env:
            start = next_weekday_at(11)
            args = {
                "service": "Beratung",
                "start": start,
                "name": "Familie Meier",
                "email": "meier@example.com",
            }
            first = (await env.call("book_appointment", args, call_id="call_687")).json()
            env.sandbox.clock.advance(timedelta(minutes=35))
            second = (await env.call("book_appointment", args, call_id="call_688")).json()
            assert (first["status"], second["status"]) == ("booked", "rejected_duplicate")

            summary = (await env.client.get("/api/summary", headers=AUTH)).json()
            assert summary["booked_appointments"] == 1
            assert summary["calls"] == 2
            assert summary["attempts_by_state"] == {"recorded": 1, "rejected": 1}
            assert summary["rejections"] == 1
            assert summary["rejection_rate"] == pytest.approx(0.5)
            assert summary["guard_rejections"] == [
                {"layer": "layer2", "verdict": "CALL ID MISMATCH", "count": 1}
            ]

            events = (await env.client.get("/api/guard-events", headers=AUTH)).json()
            assert events[0]["verdict"] == "CALL ID MISMATCH"
            assert events[0]["call_id"] == "call_688"
            assert events[0]["reason"]

            page = await env.client.get("/admin", headers=AUTH)
            assert page.status_code == 200
            assert "CALL ID MISMATCH" in page.text
            assert events[0]["reason"] in page.text.replace("&#39;", "'").replace("&amp;", "&")
            assert "<svg" in page.text
            assert 'class="bar-booked"' in page.text
            assert 'class="bar-rejected"' in page.text
            for raw in ("+491701234567", "meier@example.com", TOKEN):
                assert raw not in page.text
            assert "https://" not in page.text  # nothing from a CDN

    async def test_summary_window_end_is_exclusive(self, db_url: str) -> None:
        async with running_service(db_url, admin_token=SecretStr(TOKEN)) as env:
            old = datetime.now(UTC) - timedelta(minutes=20)
            async with env.sessionmaker() as session, session.begin():
                session.add(
                    GuardEvent(layer="layer1", verdict="STALE BOOKING DETECTED", reason="old", created_at=old)
                )
            stuck = (await env.client.get("/api/attempts/stuck", headers=AUTH)).json()
            assert stuck == []
            window = {"since": (old - timedelta(minutes=1)).isoformat(), "until": old.isoformat()}
            empty = (await env.client.get("/api/summary", headers=AUTH, params=window)).json()
            assert empty["rejections"] == 0  # the end of the window is exclusive
            window["until"] = (old + timedelta(seconds=1)).isoformat()
            one = (await env.client.get("/api/summary", headers=AUTH, params=window)).json()
            assert one["rejections"] == 1
            bad = await env.client.get("/api/guard-events", headers=AUTH, params={"limit": 0})
            assert bad.status_code == 400


@pytest.mark.asyncio
async def test_stuck_attempt_listed_with_age_and_masked_email(db_url: str) -> None:
    async with running_service(db_url, admin_token=SecretStr(TOKEN)) as env:
        booked = (
            await env.call(
                "book_appointment", {"service": "Haarschnitt", "start": next_weekday_at(9), "name": "Eva"}
            )
        ).json()
        assert booked["status"] == "booked"
        old = datetime.now(UTC) - timedelta(minutes=20)
        async with env.sessionmaker() as session, session.begin():
            template = (await session.execute(select(BookingAttempt.__table__))).mappings().one()
            values = {k: v for k, v in template.items() if k != "id"}
            values.update(
                public_id="b" * 32,
                idempotency_key="k-stuck",
                state="unknown",
                attendee_email="eva.stuck@example.com",
                updated_at=old,
            )
            await session.execute(insert(BookingAttempt).values(**values))
        stuck = (await env.client.get("/api/attempts/stuck", headers=AUTH)).json()
        assert [s["attempt_id"] for s in stuck] == ["b" * 32]
        assert stuck[0]["age_seconds"] >= 20 * 60 - 5
        assert stuck[0]["attendee_email"] == "e***@example.com"
        fresh_too = (
            await env.client.get("/api/attempts/stuck", headers=AUTH, params={"older_than_seconds": 0})
        ).json()
        assert len(fresh_too) == 1  # the recorded attempt is not stuck, however old
        page = await env.client.get("/admin", headers=AUTH)
        assert "eva.stuck@example.com" not in page.text
        assert re.search(r'id="stuck".*?unknown', page.text, re.S)


class TestPresentation:
    @pytest.mark.parametrize(
        ("query", "header", "lang"),
        [
            (None, None, "de"),
            ("en", "de-DE", "en"),
            ("fr", "en-US,en;q=0.8", "en"),
            (None, "fr-FR,en;q=0.3,de;q=0.7", "de"),
            (None, "fr", "de"),
            (None, "en;q=0", "de"),
        ],
    )
    def test_language_choice(self, query: str | None, header: str | None, lang: str) -> None:
        assert pick_language(query, header) == lang

    def test_chart_scales_to_busiest_hour_and_labels_every_six_hours(self) -> None:
        start = datetime(2026, 3, 10, 0, tzinfo=UTC)
        series = [HourBucket(start + timedelta(hours=i), i % 3, 4 if i == 5 else 0) for i in range(48)]
        chart = build_chart(series, BERLIN, {"booked": "Gebucht", "rejected": "Abgewiesen"})
        assert len(chart.bars) == 96
        tallest = max(chart.bars, key=lambda b: b.height)
        assert tallest.kind == "rejected"
        assert tallest.height == pytest.approx(chart.plot_height)
        assert [t.label for t in chart.y_ticks] == ["0", "2", "4"]
        assert len(chart.x_ticks) == 7  # the eighth (47 h in) would be cut off at the right edge
        assert all(35 + chart.left <= t.x + 35 <= chart.width for t in chart.x_ticks)
        assert all(t.label.endswith(("00:00", "06:00", "12:00", "18:00")) for t in chart.x_ticks)


class TestLocalisation:
    def test_german_numbers_dates_with_zone_and_statuses(self) -> None:
        from voicebook.api.admin.language import Formatter

        de, en = Formatter("de"), Formatter("en")
        ten = datetime(2026, 12, 1, 10, 0, tzinfo=BERLIN)
        assert de.when(ten) == "Di., 01.12.2026 10:00 MEZ"
        assert en.when(ten.astimezone(ZoneInfo("America/New_York"))) == "Tue, 2026-12-01 04:00 EST"
        assert de.percent(0.0) == "0,0 %"
        assert en.percent(0.125) == "12.5 %"
        assert de.number(12345) == "12.345"
        assert [de.label(s) for s in ("cancelled", "ongoing", "booked")] == ["storniert", "läuft", "gebucht"]
        assert de.label("calendar_unavailable") == "Kalender nicht erreichbar"
        assert de.label("CALL ID MISMATCH").startswith("CALL ID MISMATCH")  # the grep phrase stays
        assert en.label("some_new_state") == "some new state"

    def test_chart_ticks_are_round_numbers(self) -> None:
        start = datetime(2026, 3, 10, 0, tzinfo=UTC)
        series = [HourBucket(start + timedelta(hours=h), 13 if h == 3 else 0, 0) for h in range(48)]
        chart = build_chart(series, BERLIN, {"booked": "b", "rejected": "r"})
        assert [t.label for t in chart.y_ticks] == ["0", "5", "10", "15"]


@pytest.mark.asyncio
class TestPageAdditions:
    async def test_favicon_and_stylesheet_are_served(self, db_url: str) -> None:
        async with running_service(db_url) as env:
            icon = await env.client.get("/favicon.ico")
            assert (await env.client.get("/admin/assets/favicon.svg")).content == icon.content
            assert icon.status_code == 200
            assert icon.headers["content-type"] == "image/svg+xml"
            css = await env.client.get("/admin/assets/admin.css")
            assert css.status_code == 200
            assert css.headers["content-type"].startswith("text/css")

    async def test_page_shows_upcoming_appointments_and_unbooked_attempts_in_german(
        self, db_url: str
    ) -> None:
        async with running_service(db_url, admin_token=SecretStr(TOKEN)) as env:
            start = next_weekday_at(11)
            booked = await env.call(
                "book_appointment", {"service": "Haarschnitt", "start": start, "name": "Jörg"}
            )
            assert booked.json()["status"] == "booked"
            checked = await env.call(
                "check_availability",
                {"service": "Haarschnitt", "date": start[:10]},
                call_id="call_check_only",
            )
            assert checked.json()["ok"]
            page = await env.client.get("/admin?lang=de", headers=AUTH)
        assert page.status_code == 200
        upcoming = page.text.split('id="upcoming-appointments"', 1)[1].split("</section>", 1)[0]
        assert "gebucht" in upcoming
        assert "MEZ" in upcoming or "MESZ" in upcoming
        assert 'id="unbooked-attempts"' in page.text
        assert "<script" not in page.text
        assert "<style" not in page.text
        assert "0,0 %" in page.text
        today_calls = page.text.split('id="today-calls"', 1)[1]
        assert "call_check_only" in today_calls  # a call that only checked is recorded too


def test_a_missing_page_renderer_stops_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """Jinja2 and Babel are imported on the first render; that they are installed is checked at import."""
    from voicebook.api.admin import routes

    monkeypatch.setattr(routes, "find_spec", lambda name: None if name == "babel" else object())
    routes._require_installed("jinja2")
    with pytest.raises(ModuleNotFoundError, match="babel is not installed"):
        routes._require_installed("jinja2", "babel")


def test_seconds_are_formatted_like_numbers() -> None:
    from voicebook.api.admin.language import Formatter

    assert Formatter("de").seconds(12345.4) == "12.345 s"
    assert Formatter("en").seconds(12345.6) == "12,346 s"
    assert Formatter("en").seconds(None) == "–"

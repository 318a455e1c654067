"""Retell's side of the contract over HTTP: signatures, webhooks, and never a 5xx."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from tests.e2e.harness import COMPANY_NUMBER, RETELL_KEY, Env, running_service

from voicebook.db.models import Call
from voicebook.retell.signature import sign_body

FUNCTIONS = ["check_availability", "book_appointment", "cancel_appointment", "reschedule_appointment"]
PATHS = [f"/retell/functions/{f}" for f in FUNCTIONS] + ["/retell/webhook"]
BODY = {
    "name": "check_availability",
    "call": {"call_id": "call_sig", "to_number": COMPANY_NUMBER},
    "args": {"service": "Haarschnitt"},
}


def _raw(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _bad_signatures(raw: bytes) -> dict[str, dict[str, str]]:
    now = int(time.time() * 1000)
    good = sign_body(raw, RETELL_KEY, now)
    digest = good.split(",d=")[1]
    return {
        "missing": {},
        "malformed": {"X-Retell-Signature": "not-a-signature"},
        "other-key": {"X-Retell-Signature": sign_body(raw, "key_other_0000000000000000", now)},
        "six-minutes-old": {"X-Retell-Signature": sign_body(raw, RETELL_KEY, now - 6 * 60 * 1000)},
        "six-minutes-ahead": {"X-Retell-Signature": sign_body(raw, RETELL_KEY, now + 6 * 60 * 1000)},
        "uppercase-hex": {"X-Retell-Signature": f"v={now},d={digest.upper()}"},
        "tampered-body": {"X-Retell-Signature": sign_body(raw + b" ", RETELL_KEY, now)},
    }


@pytest.mark.asyncio
class TestSignatures:
    async def test_every_bad_signature_is_401_everywhere(self, db_url: str) -> None:
        async with running_service(db_url) as env:
            for path in PATHS:
                raw = _raw(_event("call_started") if path.endswith("webhook") else BODY)
                for case, headers in _bad_signatures(raw).items():
                    r = await env.client.post(
                        path, content=raw, headers={**headers, "Content-Type": "application/json"}
                    )
                    assert r.status_code == 401, (path, case)
                    assert "call_sig" not in r.text
                ok = await env.client.post(
                    path, content=raw, headers={"X-Retell-Signature": sign_body(raw, RETELL_KEY)}
                )
                assert ok.status_code in (200, 204), path

    async def test_body_that_is_not_json_is_400(self, db_url: str) -> None:
        async with running_service(db_url) as env:
            raw = b"{not json"
            r = await env.client.post(
                "/retell/functions/book_appointment",
                content=raw,
                headers={"X-Retell-Signature": sign_body(raw, RETELL_KEY)},
            )
            assert r.status_code == 400


def _event(event: str, **call: Any) -> dict[str, Any]:
    return {
        "event": event,
        "call": {
            "call_id": "call_wh",
            "from_number": "+491701234567",
            "to_number": COMPANY_NUMBER,
            "direction": "inbound",
            **call,
        },
    }


async def _calls(env: Env) -> list[Call]:
    async with env.sessionmaker() as session:
        return list((await session.execute(select(Call))).scalars())


@pytest.mark.asyncio
class TestCallWebhooks:
    async def test_repeated_and_out_of_order_events_converge(self, db_url: str) -> None:
        async with running_service(db_url) as env:
            analyzed = _event(
                "call_analyzed",
                call_status="ended",
                end_timestamp=1795532807902,
                duration_ms=276484,
                call_analysis={"call_summary": "Termin gebucht", "call_successful": True},
            )
            ended = _event(
                "call_ended",
                call_status="ended",
                start_timestamp=1795532531418,
                end_timestamp=1795532807902,
                duration_ms=276484,
                disconnection_reason="user_hangup",
            )
            for body in (analyzed, ended, ended, ended, _event("call_started", call_status="ongoing")):
                r = await env.post_signed("/retell/webhook", body)
                assert r.status_code == 204
            calls = await _calls(env)
            assert len(calls) == 1
            call = calls[0]
            assert call.status == "analyzed"
            assert call.duration_ms == 276484
            assert call.disconnection_reason == "user_hangup"
            assert call.summary == "Termin gebucht"
            assert call.successful is True
            assert call.company_id is not None

    async def test_other_events_are_acknowledged_and_ignored(self, db_url: str) -> None:
        async with running_service(db_url) as env:
            r = await env.post_signed("/retell/webhook", _event("transcript_updated"))
            assert r.status_code == 204
            assert await _calls(env) == []


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=8,
)
arg_keys = st.sampled_from(
    ["service", "start", "name", "phone", "email", "notes", "date", "time", "new_start", "x"]
)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_no_argument_object_makes_the_endpoint_answer_5xx(db_url: str) -> None:
    loop = asyncio.new_event_loop()
    service = running_service(db_url)
    env = loop.run_until_complete(service.__aenter__())
    try:

        @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
        @given(
            function=st.sampled_from([*FUNCTIONS, "nope"]),
            args=st.dictionaries(arg_keys, json_values, max_size=6),
        )
        def check(function: str, args: dict[str, Any]) -> None:
            r = loop.run_until_complete(env.call(function, args))
            assert r.status_code < 500, r.text
            assert set(r.json()) >= {"ok", "status", "message"}

        check()
    finally:
        loop.run_until_complete(service.__aexit__(None, None, None))
        loop.close()


@pytest.mark.asyncio
async def test_every_way_out_of_a_booking_records_its_call_once(db_url: str) -> None:
    """A booking records its call in the write-ahead transaction; the ways out that never reach it
    (bad arguments, an unknown service, a start outside the window) record it themselves."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from voicebook.db.models import Service

    tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(hour=9, minute=0, second=0, microsecond=0)
    cases = {
        "call_bad_args": {"service": "Haarschnitt", "start": "not a time", "name": "Ada"},
        "call_unknown_service": {"service": "Massage", "start": tomorrow.isoformat(), "name": "Ada"},
        "call_too_far": {
            "service": "Haarschnitt",
            "start": (tomorrow + timedelta(days=60)).isoformat(),
            "name": "Ada",
        },
        "call_booked": {"service": "Haarschnitt", "start": tomorrow.isoformat(), "name": "Ada"},
    }
    async with running_service(db_url) as env:
        async with env.sessionmaker() as session, session.begin():
            await session.execute(
                update(Service).where(Service.name == "Haarschnitt").values(max_days_ahead=30)
            )
        said = {}
        for call_id, args in cases.items():
            body = {
                "name": "book_appointment",
                "call": {"call_id": call_id, "from_number": "+491701234567", "to_number": COMPANY_NUMBER},
                "args": args,
            }
            r = await env.post_signed("/retell/functions/book_appointment", body)
            assert r.status_code == 200, r.text
            said[call_id] = r.json()["status"]
        assert said == {
            "call_bad_args": "invalid_input",
            "call_unknown_service": "not_found",
            "call_too_far": "invalid_input",
            "call_booked": "booked",
        }
        assert sorted(c.retell_call_id for c in await _calls(env)) == sorted(cases)

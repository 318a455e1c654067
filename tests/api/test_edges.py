"""Every case of issue 14, as an attacker without credentials (or with a stolen signature) would send it.

Each answer must be a 4xx (or a 2xx where the request is valid), never a 5xx, and the last-resort handler
(``api.unexpected_error``) must never run: ``no_unexpected_errors`` fails the test if it does, and
``httpx.ASGITransport`` re-raises anything that escapes the app. DB-touching cases run on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from sqlalchemy import func, select
from tests.e2e.harness import CALCOM_SECRET, COMPANY_NUMBER, RETELL_KEY, Env, running_service

from voicebook.api.admin.auth import COOKIE, session_cookie
from voicebook.api.security_headers import CONTENT_SECURITY_POLICY
from voicebook.api.throttle import LoginThrottle
from voicebook.db.models import Appointment, Call
from voicebook.retell.signature import sign_body

TOKEN = "admin-edge-token-9d2e"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DATABASES = pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
FUNCTION_PATHS = [
    f"/retell/functions/{f}"
    for f in ("check_availability", "book_appointment", "cancel_appointment", "reschedule_appointment")
]


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[dict[str, Any]]:
    """The structlog events called ``name`` (they reach the standard library as dict messages)."""
    return [r.msg for r in caplog.records if isinstance(r.msg, dict) and r.msg.get("event") == name]


@pytest.fixture(autouse=True)
def no_unexpected_errors(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Fail any test here that reaches the last-resort 500 handler."""
    caplog.set_level(logging.INFO)
    yield caplog
    assert events(caplog, "api.unexpected_error") == []


def signed_retell(raw: bytes) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Retell-Signature": sign_body(raw, RETELL_KEY)}


def signed_calcom(raw: bytes, secret: str = CALCOM_SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Cal-Signature-256": digest}


def call_event(event: str = "call_ended", **call: Any) -> dict[str, Any]:
    return {
        "event": event,
        "call": {
            "call_id": "call_edge",
            "agent_id": "agent_1",
            "from_number": "+491701234567",
            "to_number": COMPANY_NUMBER,
            "direction": "inbound",
            "call_status": "ended",
            **call,
        },
    }


def booking_event(trigger: str = "BOOKING_CREATED", **payload: Any) -> dict[str, Any]:
    return {
        "triggerEvent": trigger,
        "createdAt": "2026-12-01T10:00:00Z",
        "payload": {
            "uid": "edge-uid-1",
            "eventTypeId": 2563193,
            "startTime": "2026-12-10T10:00:00Z",
            "endTime": "2026-12-10T10:30:00Z",
            "status": "ACCEPTED",
            "attendees": [{"name": "Anna", "email": "anna@example.com"}],
            "metadata": {},
            **payload,
        },
    }


async def count(env: Env, model: type[Call] | type[Appointment]) -> int:
    async with env.sessionmaker() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


@pytest.mark.asyncio
@DATABASES
class TestUnauthenticated:
    async def test_hostile_admin_cookies_are_401(self, db_url: str) -> None:
        # Throttling would answer 429 after ten of these; this test is about the parser.
        async with running_service(
            db_url, admin_token=SecretStr(TOKEN), login_attempts_per_minute=1000
        ) as env:
            for value in ("².x", "1" * 5000 + ".ab", "٣٣٣.x", "", ".", "-1.x", "1e9.x", "\x7f.x"):
                header = f"{COOKIE}={value}"
                encodings = ["utf-8", "latin-1"] if header.isascii() or max(header) <= "\xff" else ["utf-8"]
                for path in ("/admin", "/api/summary"):
                    for encoding in encodings:
                        r = await env.client.get(path, headers={"Cookie": header.encode(encoding)})
                        assert r.status_code == 401, (path, value, encoding)

    async def test_login_with_too_many_form_fields_is_401(self, db_url: str) -> None:
        async with running_service(db_url, admin_token=SecretStr(TOKEN)) as env:
            form = "&".join(f"f{i}=x" for i in range(50)) + f"&token={TOKEN}"
            r = await env.client.post(
                "/admin/login",
                content=form.encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert r.status_code == 401
            garbage = await env.client.post("/admin/login", content=b"\xff\xfe&&&==;;%zz")
            assert garbage.status_code == 401

    async def test_non_ascii_calcom_signature_is_401(self, db_url: str) -> None:
        async with running_service(db_url) as env:
            raw = json.dumps(booking_event()).encode()
            for value in ("é" * 64, "ü", "\u00ff" * 10):
                r = await env.client.post(
                    "/calcom/webhook", content=raw, headers={"X-Cal-Signature-256": value.encode("latin-1")}
                )
                assert r.status_code == 401
            assert await count(env, Appointment) == 0

    async def test_non_ascii_retell_signature_and_bearer_are_401(self, db_url: str) -> None:
        async with running_service(db_url, admin_token=SecretStr(TOKEN)) as env:
            raw = json.dumps(call_event()).encode()
            for value in ("v=1,d=" + "é" * 64, "ü", "\u00ff" * 300):
                header = value.encode("latin-1")
                for path in [FUNCTION_PATHS[0], "/retell/webhook"]:
                    r = await env.client.post(path, content=raw, headers={"X-Retell-Signature": header})
                    assert r.status_code == 401
                r = await env.client.get("/api/summary", headers={"Authorization": b"Bearer " + header})
                assert r.status_code in (401, 429)
            assert await count(env, Call) == 0

    async def test_deeply_nested_json_is_400_signed_and_401_unsigned(self, db_url: str) -> None:
        async with running_service(db_url) as env:
            raw = b"[" * 100_000
            for path in [*FUNCTION_PATHS, "/retell/webhook"]:
                assert (await env.client.post(path, content=raw)).status_code == 401
                r = await env.client.post(path, content=raw, headers=signed_retell(raw))
                assert r.status_code == 400, path
            r = await env.client.post("/calcom/webhook", content=raw, headers=signed_calcom(raw))
            assert r.status_code == 400
            within = json.dumps(call_event(call_analysis={"custom_analysis_data": {"a": [[[1]]]}})).encode()
            ok = await env.client.post("/retell/webhook", content=within, headers=signed_retell(within))
            assert ok.status_code == 204

    async def test_body_over_the_limit_is_413_before_it_is_read(self, db_url: str) -> None:
        async with running_service(db_url, max_body_bytes=4096) as env:
            big = b"x" * 10_000_000
            for path in ["/retell/webhook", "/calcom/webhook", "/admin/login", FUNCTION_PATHS[0]]:
                r = await env.client.post(path, content=big)
                assert r.status_code == 413, path
                assert "4096" in r.json()["detail"]

            async def chunks() -> Any:  # no Content-Length: counted while it streams
                for _ in range(10):
                    yield b"y" * 1000

            r = await env.client.post("/retell/webhook", content=chunks())
            assert r.status_code == 413
            small = json.dumps(call_event("call_started")).encode()
            assert (
                await env.client.post("/retell/webhook", content=small, headers=signed_retell(small))
            ).status_code == 204

    async def test_malformed_content_length_is_400(self, db_url: str) -> None:
        async with running_service(db_url) as env:
            for value in ("²".encode("latin-1"), b"12abc", b"-1", b"9" * 30):
                r = await env.client.post("/retell/webhook", content=b"{}", headers={"Content-Length": value})
                assert r.status_code == 400, value


@pytest.mark.asyncio
@DATABASES
class TestSignedButOutOfRange:
    @pytest.mark.parametrize(
        "call",
        [
            {"start_timestamp": 1e18},
            {"start_timestamp": -1e15},
            {"end_timestamp": 10**30},
            {"duration_ms": 1e30},
            {"duration_ms": -5},
            {"agent_id": "a" * 129},
            {"from_number": "+" + "1" * 255},
            {"to_number": "9" * 256},
            {"call_id": "c" * 129},
            {"call_id": "call\x00nul"},
            {"direction": "inbound" * 3},
            {"call_status": "s" * 33},
            {"disconnection_reason": "r" * 65},
        ],
    )
    async def test_retell_webhook_fields_out_of_range_are_400(
        self, db_url: str, call: dict[str, Any]
    ) -> None:
        async with running_service(db_url) as env:
            raw = json.dumps(call_event(**call)).encode()
            r = await env.client.post("/retell/webhook", content=raw, headers=signed_retell(raw))
            assert r.status_code == 400
            assert await count(env, Call) == 0

    async def test_nul_in_the_summary_is_dropped_not_a_500(self, db_url: str) -> None:
        async with running_service(db_url) as env:
            body = call_event(
                "call_analyzed", call_analysis={"call_summary": "Termin\x00 gebucht" + "!" * 30_000}
            )
            raw = json.dumps(body).encode()
            r = await env.client.post("/retell/webhook", content=raw, headers=signed_retell(raw))
            assert r.status_code == 204
            async with env.sessionmaker() as session:
                call = (await session.execute(select(Call))).scalar_one()
            assert call.summary is not None
            assert call.summary.startswith("Termin gebucht")
            assert len(call.summary) == 20_000

    async def test_function_call_with_oversized_call_object_is_answered_not_stored(self, db_url: str) -> None:
        async with running_service(db_url) as env:
            for call in (
                {"call_id": "c" * 300},
                {"call_id": "x\x00y"},
                {"call_id": "ok", "to_number": "1" * 256},
            ):
                body = {
                    "name": "check_availability",
                    "call": {"to_number": COMPANY_NUMBER, **call},
                    "args": {},
                }
                raw = json.dumps(body).encode()
                r = await env.client.post(FUNCTION_PATHS[0], content=raw, headers=signed_retell(raw))
                assert r.status_code == 200
                assert r.json()["status"] == "invalid_input"

    @pytest.mark.parametrize(
        "payload",
        [
            {"uid": "u" * 65},
            {"uid": "edge\x00uid"},
            {"eventTypeId": 2**70},
            {"eventTypeId": "2563193"},
            {"startTime": "0001-01-01T00:00:00+01:00"},
            {"startTime": "9999-12-31T23:59:59-01:00"},
            {"endTime": "not a time"},
            {"attendees": [{"name": "Anna\x00", "email": "anna@example.com"}]},
            {"rescheduleUid": "r" * 65},
            {"status": ["ACCEPTED"]},
            {"metadata": "attempt"},
        ],
    )
    async def test_calcom_webhook_fields_out_of_range_are_400(
        self, db_url: str, payload: dict[str, Any]
    ) -> None:
        async with running_service(db_url) as env:
            raw = json.dumps(booking_event(**payload)).encode()
            r = await env.client.post("/calcom/webhook", content=raw, headers=signed_calcom(raw))
            assert r.status_code == 400, r.text
            assert await count(env, Appointment) == 0

    async def test_calcom_unknown_but_well_formed_events_are_2xx(self, db_url: str) -> None:
        async with running_service(db_url) as env:
            for event in (booking_event("MEETING_ENDED"), {"triggerEvent": "PING", "payload": "hello"}, {}):
                raw = json.dumps(event).encode()
                r = await env.client.post("/calcom/webhook", content=raw, headers=signed_calcom(raw))
                assert r.status_code == 200
                assert r.json() == {"status": "ignored"}
            raw = json.dumps(booking_event()).encode()
            r = await env.client.post("/calcom/webhook", content=raw, headers=signed_calcom(raw))
            assert r.json() == {"status": "created_external"}

    @pytest.mark.parametrize(
        "query",
        [
            "/api/summary?since=0001-01-01T00:00:00%2B05:00",
            "/api/summary?until=0001-01-01T00:00:00%2B05:00",
            "/api/summary?since=9999-12-31T23:59:59-05:00",
            "/api/summary?company_id=4294967296",
            "/api/summary?company_id=-1",
            "/api/attempts/stuck?older_than_seconds=1e300",
            "/api/attempts/stuck?older_than_seconds=inf",
            "/api/attempts/stuck?older_than_seconds=nan",
            "/api/attempts/stuck?older_than_seconds=-1",
            "/api/guard-events?limit=99999999999999999999",
        ],
    )
    async def test_admin_query_parameters_out_of_range_are_400(self, db_url: str, query: str) -> None:
        async with running_service(db_url, admin_token=SecretStr(TOKEN)) as env:
            r = await env.client.get(query, headers=AUTH)
            assert r.status_code == 400, r.text
            assert (
                await env.client.get("/api/summary?since=2026-01-01T00:00:00%2B05:00", headers=AUTH)
            ).status_code == 200


@pytest.mark.asyncio
@DATABASES
class TestBlankSecrets:
    async def test_blank_calcom_webhook_secret_refuses_events_signed_with_the_empty_key(
        self, db_url: str
    ) -> None:
        async with running_service(db_url, calcom_webhook_secret=SecretStr("")) as env:
            for trigger in ("BOOKING_CREATED", "BOOKING_CANCELLED", "BOOKING_RESCHEDULED"):
                raw = json.dumps(booking_event(trigger)).encode()
                r = await env.client.post("/calcom/webhook", content=raw, headers=signed_calcom(raw, ""))
                assert r.status_code == 401
            assert await count(env, Appointment) == 0

    async def test_blank_admin_token_and_retell_key_close_their_doors(self, db_url: str) -> None:
        async with running_service(db_url, admin_token=SecretStr("  "), retell_api_key=SecretStr("")) as env:
            assert (
                await env.client.get("/api/summary", headers={"Authorization": "Bearer "})
            ).status_code == 503
            raw = json.dumps(call_event()).encode()
            r = await env.client.post(
                "/retell/webhook", content=raw, headers={"X-Retell-Signature": sign_body(raw, "")}
            )
            assert r.status_code == 401

    async def test_start_up_says_which_secrets_were_blank_in_one_line(
        self, db_url: str, no_unexpected_errors: pytest.LogCaptureFixture
    ) -> None:
        async with running_service(db_url, calcom_webhook_secret=SecretStr(""), admin_token=SecretStr("")):
            pass
        lines = events(no_unexpected_errors, "settings.blank_secrets")
        assert len(lines) == 1
        assert "VOICEBOOK_CALCOM_WEBHOOK_SECRET" in lines[0]["detail"]
        assert "VOICEBOOK_ADMIN_TOKEN" in lines[0]["detail"]


@pytest.mark.asyncio
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
class TestHardening:
    async def test_login_throttle_answers_429_with_retry_after_and_audits(
        self, db_url: str, no_unexpected_errors: pytest.LogCaptureFixture
    ) -> None:
        async with running_service(db_url, admin_token=SecretStr(TOKEN)) as env:
            for _ in range(10):
                r = await env.client.post("/admin/login", data={"token": "guess"})
                assert r.status_code == 401
            for attempt in ({"Authorization": "Bearer guess"}, AUTH):  # the right token too: no oracle
                r = await env.client.get("/api/summary", headers=attempt)
                assert r.status_code == 429
                assert 1 <= int(r.headers["retry-after"]) <= 60
            assert (await env.client.post("/admin/login", data={"token": TOKEN})).status_code == 429
            assert (await env.client.get("/admin")).status_code == 401  # the login page itself stays
            other = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=env.client._transport.app, client=("10.9.8.7", 1)),  # type: ignore[attr-defined]
                base_url="http://voicebook.test",
            )
            async with other:
                assert (await other.get("/api/summary", headers=AUTH)).status_code == 200
        assert events(no_unexpected_errors, "admin.login_throttled")

    async def test_security_headers_on_admin_and_api_and_no_inline_code(self, db_url: str) -> None:
        async with running_service(db_url, admin_token=SecretStr(TOKEN)) as env:
            page = await env.client.get("/admin", headers=AUTH)
            assert page.status_code == 200
            for r in (
                page,
                await env.client.get("/admin"),
                await env.client.get("/api/summary", headers=AUTH),
                await env.client.get("/api/summary"),
            ):
                assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
                assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
                assert "unsafe-inline" not in r.headers["content-security-policy"]
                assert r.headers["x-frame-options"] == "DENY"
                assert r.headers["x-content-type-options"] == "nosniff"
                assert r.headers["referrer-policy"] == "no-referrer"
                assert r.headers["cache-control"] == "no-store"
            for html in (page.text, (await env.client.get("/admin")).text):
                assert "<script" not in html
                assert "<style" not in html
                assert "style=" not in html
            css = await env.client.get("/admin/assets/admin.css")
            assert css.status_code == 200
            assert css.headers["content-type"].startswith("text/css")
            assert (await env.client.get("/admin/assets/..%2Fadmin.py")).status_code == 404

    async def test_api_docs_are_off_unless_enabled(self, db_url: str) -> None:
        async with running_service(db_url) as env:
            for path in ("/docs", "/redoc", "/openapi.json"):
                assert (await env.client.get(path)).status_code == 404
        async with running_service(db_url, api_docs_enabled=True) as env:
            for path in ("/docs", "/redoc", "/openapi.json"):
                assert (await env.client.get(path)).status_code == 200

    async def test_session_cookie_still_works(self, db_url: str) -> None:
        async with running_service(db_url, admin_token=SecretStr(TOKEN)) as env:
            r = await env.client.get("/api/summary", headers={"Cookie": f"{COOKIE}={session_cookie(TOKEN)}"})
            assert r.status_code == 200


def test_throttle_is_per_address_and_forgets_after_a_minute() -> None:
    now = [1000.0]
    throttle = LoginThrottle(3, clock=lambda: now[0], max_clients=2)
    for _ in range(3):
        throttle.failed("a")
    assert throttle.retry_after("a") == 60
    assert throttle.retry_after("b") is None
    now[0] += 30
    assert throttle.retry_after("a") == 30
    now[0] += 31
    assert throttle.retry_after("a") is None
    for client in ("c", "d", "e"):
        throttle.failed(client)
    assert len(throttle._failures) <= 2


def test_configure_logging_keeps_a_switched_off_access_log_off() -> None:
    from voicebook.logging import configure_logging

    access = logging.getLogger("uvicorn.access")
    saved = (list(access.handlers), access.propagate)
    try:
        access.handlers.clear()
        access.propagate = False  # what uvicorn.run(access_log=False) leaves behind
        configure_logging("INFO")
        assert access.propagate is False
    finally:
        access.handlers[:], access.propagate = saved
        configure_logging("INFO")


def test_sandbox_control_api_is_off_unless_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from voicebook.calcom.sandbox import server
    from voicebook.cli.main import app

    seen: list[bool] = []
    monkeypatch.setattr(server, "run", lambda _h, _p, _s, control, *_a, **_k: seen.append(control))
    monkeypatch.delenv("VOICEBOOK_SANDBOX_CONTROL_ENABLED", raising=False)
    assert CliRunner().invoke(app, ["sandbox"]).exit_code == 0
    assert CliRunner().invoke(app, ["sandbox", "--control"]).exit_code == 0
    assert seen == [False, True]


def test_serve_writes_env_with_mode_0600() -> None:
    from pathlib import Path

    script = (Path(__file__).parents[2] / "scripts" / "serve").read_text()
    assert "umask 077" in script
    assert "chmod 600 .env" in script
    assert "VOICEBOOK_API_DOCS_ENABLED" in script


@pytest.mark.parametrize(
    "raw",
    [b'"' + b'\\"' * 130_000, b'"' * 262_144, b"[" * 262_144, b'"a' * 131_072, b"{" * 100_000 + b'"'],
    ids=["escaped-quotes", "quotes", "brackets", "unterminated-strings", "open-objects"],
)
def test_json_depth_check_is_linear_on_hostile_bodies(raw: bytes) -> None:
    from voicebook.api.limits import json_depth

    started = time.perf_counter()
    json_depth(raw)
    assert time.perf_counter() - started < 5.0  # quadratic would take minutes; the machine may be busy


def test_json_depth_ignores_brackets_inside_strings() -> None:
    from voicebook.api.limits import json_depth

    assert json_depth(b'["a\\"]", {"x": [[1]]}]') == 4
    assert json_depth(b'{"k": "[[[[[[[[["}') == 1


def test_loads_object_refuses_one_level_over_the_limit_and_no_less() -> None:
    from voicebook.api.limits import BodyError, loads_object

    def nested(levels: int) -> bytes:  # an object holding lists: exactly ``levels`` brackets, all open
        return b'{"a": ' + b"[" * (levels - 1) + b"]" * (levels - 1) + b"}"

    assert loads_object(nested(4), 4) == {"a": [[[]]]}
    with pytest.raises(BodyError, match="deeper than 4"):
        loads_object(nested(5), 4)
    assert loads_object(b'{"a": "[[[[[[", "b": [1]}', 4) == {"a": "[[[[[[", "b": [1]}
    flat = b'{"a": [' + b"[], " * 50 + b"[]]}"  # many brackets, depth 3
    assert len(loads_object(flat, 4)["a"]) == 51


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='ab[]{}"\\/\n\u00fc', max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(alphabet='k"\\[', max_size=3), inner),
    max_leaves=40,
)


@settings(max_examples=400, deadline=None)
@given(value=json_values, ascii_only=st.booleans())
def test_the_parsed_nesting_is_the_bracket_depth(value: Any, ascii_only: bool) -> None:
    from voicebook.api.limits import _nesting, json_depth

    raw = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert _nesting(json.loads(raw), 1000) == json_depth(raw)


def _loads_object_by_exact_depth(raw: bytes, max_depth: int) -> Any:
    """What loads_object answered before the quick measure: exact depth, then the parse."""
    from voicebook.api.limits import json_depth

    if json_depth(raw) > max_depth:
        return "deep"
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return "not JSON"
    return data if isinstance(data, dict) else "not an object"


@settings(max_examples=1500, deadline=None)
@given(
    raw=st.one_of(
        st.binary(max_size=40).map(lambda b: b.translate(None, b"\x00\xfe\xff")),  # no UTF-16/32 marks
        st.lists(
            st.sampled_from([b"[", b"]", b"{", b"}", b'"', b"\\", b'"a":', b"1", b",", b" "]), max_size=40
        ).map(b"".join),
        json_values.map(lambda v: json.dumps({"v": v}).encode()),
    ),
    max_depth=st.integers(min_value=2, max_value=4),
)
@example(raw=b"[" * 5000, max_depth=4)  # past the parser's recursion limit
@example(raw=b"[" * 5 + b"1" + b"]" * 5, max_depth=4)  # parses, one level too deep
@example(raw=b'{"a": "[[[[[[", "b": [1]}', max_depth=4)  # the brackets are in a string
def test_loads_object_answers_every_body_as_the_exact_depth_check_would(raw: bytes, max_depth: int) -> None:
    from voicebook.api.limits import BodyError, loads_object

    expected = _loads_object_by_exact_depth(raw, max_depth)
    try:
        got: Any = loads_object(raw, max_depth)
    except BodyError as exc:
        got = {
            f"JSON nested deeper than {max_depth} levels": "deep",
            "body is not JSON": "not JSON",
            "body is not a JSON object": "not an object",
        }[exc.detail]
    assert got == expected


header_bytes = st.binary(max_size=300).map(
    lambda b: b.replace(b"\r", b"").replace(b"\n", b"").replace(b"\x00", b"")
)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_any_cookie_authorization_or_form_bytes_get_a_4xx(db_url: str) -> None:
    """Whatever bytes an unauthenticated client puts in the headers and form we parse, never a 5xx."""
    loop = asyncio.new_event_loop()
    service = running_service(db_url, admin_token=SecretStr(TOKEN), login_attempts_per_minute=10_000)
    env = loop.run_until_complete(service.__aenter__())
    try:

        @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
        @given(
            cookie=header_bytes,
            authorization=header_bytes,
            signature=header_bytes,
            form=st.binary(max_size=500),
            path=st.sampled_from(["/admin", "/api/summary", "/api/attempts/stuck"]),
        )
        def check(cookie: bytes, authorization: bytes, signature: bytes, form: bytes, path: str) -> None:
            headers = {"Cookie": COOKIE.encode() + b"=" + cookie, "Authorization": authorization}
            page = loop.run_until_complete(env.client.get(path, headers=headers))
            assert page.status_code in (401, 503), page.status_code
            login = loop.run_until_complete(env.client.post("/admin/login", content=form))
            assert login.status_code == 401
            hook = loop.run_until_complete(
                env.client.post("/calcom/webhook", content=form, headers={"X-Cal-Signature-256": signature})
            )
            assert hook.status_code == 401

        check()
    finally:
        loop.run_until_complete(service.__aexit__(None, None, None))
        loop.close()

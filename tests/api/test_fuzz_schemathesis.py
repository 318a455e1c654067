"""Schemathesis against the live app's OpenAPI: every operation, bounded, and never a 5xx.

The app runs in a real uvicorn (``tests.api.live``) with the API docs on; its ``/openapi.json`` is the
schema. Three operations read their body raw, because a signature covers the exact bytes (Retell
functions and webhook, Cal.com webhook), and the admin login reads its form by hand, so FastAPI cannot
describe those bodies; ``_with_bodies`` adds the shapes Retell and Cal.com send, and every generated body is
then signed with the test keys, so the fuzzing reaches the parsing and the database instead of stopping at
401. The admin API gets the token. Each operation is bounded by ``EXAMPLES`` (halved for negative cases,
a third on PostgreSQL): about 440 requests, 10-35 s for both backends depending on the machine's load.
Run with ``-s`` to see the cases, time and statuses per operation.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from pydantic import SecretStr
from schemathesis import Case, GenerationMode
from tests.api.live import live_server
from tests.conftest import _migrated as migrated
from tests.e2e.harness import CALCOM_SECRET, COMPANY_NUMBER, RETELL_KEY

from voicebook.app import create_app
from voicebook.retell.signature import sign_body
from voicebook.settings import Settings

TOKEN = "fuzz-admin-token-3c1a"
EXAMPLES = {"POST /retell/functions/{name}": 60, "POST /retell/webhook": 40, "POST /calcom/webhook": 40}
DEFAULT_EXAMPLES = 16

_TEXT: dict[str, Any] = {"type": "string"}
_FUNCTION_BODY = {
    "type": "object",
    "properties": {
        "name": _TEXT,
        "call": {
            "type": "object",
            "properties": {
                "call_id": _TEXT,
                "from_number": {"type": "string", "examples": ["+491701234567"]},
                "to_number": {"type": "string", "enum": [COMPANY_NUMBER, "+4930000000", ""]},
                "direction": _TEXT,
            },
            "required": ["call_id", "to_number"],
        },
        "args": {
            "type": "object",
            "properties": {
                "service": {"type": "string", "enum": ["Haarschnitt", "Beratung", "Herrenschnitt", "Nagel"]},
                "date": _TEXT,
                "time": _TEXT,
                "start": _TEXT,
                "new_start": _TEXT,
                "name": _TEXT,
                "phone": _TEXT,
                "email": _TEXT,
                "notes": _TEXT,
            },
        },
    },
    "required": ["call", "args"],
}
_CALL = {
    "type": "object",
    "properties": {
        "call_id": _TEXT,
        "agent_id": _TEXT,
        "from_number": _TEXT,
        "to_number": {"type": "string", "enum": [COMPANY_NUMBER, "+4930000000"]},
        "direction": _TEXT,
        "call_status": _TEXT,
        "start_timestamp": {"type": "integer"},
        "end_timestamp": {"type": "integer"},
        "duration_ms": {"type": "integer"},
        "disconnection_reason": _TEXT,
        "call_analysis": {
            "type": "object",
            "properties": {"call_summary": _TEXT, "call_successful": {"type": "boolean"}},
        },
    },
    "required": ["call_id"],
}
_RETELL_WEBHOOK = {
    "type": "object",
    "properties": {
        "event": {
            "type": "string",
            "enum": ["call_started", "call_ended", "call_analyzed", "transcript_updated"],
        },
        "call": _CALL,
    },
    "required": ["event", "call"],
}
_CALCOM_WEBHOOK = {
    "type": "object",
    "properties": {
        "triggerEvent": {
            "type": "string",
            "enum": [
                "BOOKING_CREATED",
                "BOOKING_CANCELLED",
                "BOOKING_RESCHEDULED",
                "BOOKING_REJECTED",
                "PING",
            ],
        },
        "createdAt": _TEXT,
        "payload": {
            "type": "object",
            "properties": {
                "uid": _TEXT,
                "rescheduleUid": _TEXT,
                "eventTypeId": {"type": "integer"},
                "startTime": {"type": "string", "format": "date-time"},
                "endTime": _TEXT,
                "status": _TEXT,
                "attendees": {
                    "type": "array",
                    "items": {"type": "object", "properties": {"name": _TEXT, "email": _TEXT}},
                },
                "metadata": {"type": "object", "properties": {"attempt_id": _TEXT, "call_id": _TEXT}},
            },
            "required": ["uid"],
        },
    },
    "required": ["triggerEvent", "payload"],
}
_LOGIN_FORM = {"type": "object", "properties": {"token": _TEXT, "lang": _TEXT}}


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _with_bodies(doc: dict[str, Any]) -> dict[str, Any]:
    """The live document plus the bodies of the operations that read theirs raw (see the module doc)."""
    doc = json.loads(json.dumps(doc))
    paths = doc["paths"]
    paths["/retell/functions/{name}"]["post"]["requestBody"] = _json_body(_FUNCTION_BODY)
    for parameter in paths["/retell/functions/{name}"]["post"]["parameters"]:
        if parameter["name"] == "name":
            names = ["check_availability", "book_appointment", "cancel_appointment", "reschedule_appointment"]
            parameter["schema"] = {"type": "string", "enum": [*names, "transfer_call"]}
    paths["/retell/webhook"]["post"]["requestBody"] = _json_body(_RETELL_WEBHOOK)
    paths["/calcom/webhook"]["post"]["requestBody"] = _json_body(_CALCOM_WEBHOOK)
    paths["/admin/login"]["post"]["requestBody"] = {
        "content": {"application/x-www-form-urlencoded": {"schema": _LOGIN_FORM}}
    }
    return doc


def _settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        retell_api_key=SecretStr(RETELL_KEY),
        calcom_webhook_secret=SecretStr(CALCOM_SECRET),
        admin_token=SecretStr(TOKEN),
        api_docs_enabled=True,
        reconcile_interval_seconds=0,
        login_attempts_per_minute=10_000,
        _env_file=None,  # type: ignore[call-arg]
    )


# Collected from the app itself (no server needed to list the operations); the live server's document
# is checked to be the same one in ``test_the_live_document_is_the_one_fuzzed``.
_STATIC_DOC = create_app(_settings("sqlite:///:memory:")).openapi()
SCHEMA = schemathesis.openapi.from_dict(_with_bodies(_STATIC_DOC))
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]
# Negative cases need something to break: operations without parameters or body have none.
CASES = [
    pytest.param(op, mode, id=f"{op.label}-{mode}")
    for op in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or op.body or any(True for _ in op.iter_parameters())
]


@dataclass(frozen=True)
class Live:
    url: str
    backend: str


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    database_urls: dict[str, str],
    migrated_backends: dict[str, str],
) -> Iterator[Live]:
    """The live app on SQLite and on PostgreSQL (where NUL bytes and over-long values used to raise)."""
    backend: str = request.param
    if backend == "sqlite":
        database_url = f"sqlite:///{Path(tmp_path_factory.mktemp('fuzz')) / 'fuzz.db'}"
    else:
        database_url = migrated(backend, database_urls, migrated_backends)
    with live_server(_settings(database_url)) as url:
        yield Live(url, backend)


def _request(case: Case, base_url: str) -> httpx.Request:
    kwargs = case.as_transport_kwargs(base_url=base_url)
    headers = {k: v for k, v in (kwargs.get("headers") or {}).items() if k.lower() != "user-agent"}
    content: bytes | None = None
    if "json" in kwargs:
        content = json.dumps(kwargs["json"], separators=(",", ":")).encode()
        headers["Content-Type"] = "application/json"
    elif isinstance(kwargs.get("data"), dict):
        content = _form(kwargs["data"])
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif isinstance(kwargs.get("data"), str | bytes):
        content = kwargs["data"].encode() if isinstance(kwargs["data"], str) else kwargs["data"]
    path = case.operation.path
    if path.startswith("/retell/") and content is not None:
        # Retell's scheme signs text; a body that is not UTF-8 goes unsigned and must get its 401.
        with contextlib.suppress(UnicodeDecodeError):
            headers["X-Retell-Signature"] = sign_body(content, RETELL_KEY)
    elif path == "/calcom/webhook" and content is not None:
        headers["X-Cal-Signature-256"] = hmac.new(CALCOM_SECRET.encode(), content, hashlib.sha256).hexdigest()
    elif path.startswith(("/api/", "/admin")) and path != "/admin/login":
        headers["Authorization"] = f"Bearer {TOKEN}"
    return httpx.Request(
        kwargs["method"], kwargs["url"], params=kwargs.get("params"), headers=headers, content=content
    )


def _form(data: dict[str, Any]) -> bytes:
    from urllib.parse import urlencode

    return urlencode({k: v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}).encode()


def test_the_live_document_is_the_one_fuzzed(live: Live) -> None:
    assert httpx.get(f"{live.url}/openapi.json", timeout=10).json() == _STATIC_DOC


@pytest.mark.parametrize(("operation", "mode"), CASES)
def test_no_operation_answers_5xx(live: Live, operation: Any, mode: GenerationMode) -> None:
    """Positive cases fit the schema (deep paths), negative ones break it (types, ranges, missing fields)."""
    # Negative cases get half, PostgreSQL a third: the same code paths, fewer new ones.
    share = (1 if mode is GenerationMode.POSITIVE else 2) * (1 if live.backend == "sqlite" else 3)
    examples = max(1, EXAMPLES.get(operation.label, DEFAULT_EXAMPLES) // share)
    base_url = live.url
    started = time.monotonic()
    statuses: dict[int, int] = {}
    with httpx.Client(timeout=30) as client:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Case) -> None:
            response = client.send(_request(case, base_url))
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            assert response.status_code < 500, (
                case.operation.label,
                response.status_code,
                response.text[:300],
            )

        check()
    assert sum(statuses.values()) >= 1
    assert httpx.get(f"{base_url}/healthz", timeout=5).status_code == 200
    seconds = time.monotonic() - started
    counts = dict(sorted(statuses.items()))
    print(
        f"{live.backend} {operation.label} ({mode}): {sum(counts.values())} cases, {seconds:.1f} s, {counts}"
    )

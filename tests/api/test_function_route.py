"""``POST /retell/functions/{name}`` is served by a plain Starlette route (``api.retell.route``) while a
FastAPI route describes it in the OpenAPI schema: both must answer every request alike, and the schema must
keep describing the operation once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from tests.e2e.harness import COMPANY_NUMBER, RETELL_KEY, Env, running_service

from voicebook.api import retell
from voicebook.retell.signature import sign_body

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@contextmanager
def schema_route_only(app: FastAPI) -> Iterator[None]:
    """Take the serving route out, so requests reach the FastAPI route."""
    routes = app.router.routes
    index = routes.index(retell.route)
    routes.pop(index)
    try:
        yield
    finally:
        routes.insert(index, retell.route)


def _signed(raw: bytes, **headers: str) -> dict[str, str]:
    return {"X-Retell-Signature": sign_body(raw, RETELL_KEY), "Content-Type": "application/json", **headers}


def _body(name: str, call: dict[str, Any] | None = None, **args: Any) -> bytes:
    call = {"call_id": "call_route", "from_number": "+491701234567", "to_number": COMPANY_NUMBER} | (
        call or {}
    )
    return json.dumps({"name": name, "call": call, "args": args}).encode()


DEEP = b'{"a": ' + b"[" * 40 + b"]" * 40 + b"}"
CASES: list[tuple[str, str, bytes, dict[str, str]]] = [
    ("POST", "/retell/functions/check_availability", _body("check_availability", service="Haarschnitt"), {}),
    ("POST", "/retell/functions/book_appointment", _body("book_appointment", service="Nope"), {}),
    ("POST", "/retell/functions/cancel_appointment", _body("cancel_appointment"), {}),
    ("POST", "/retell/functions/no_such_function", _body("no_such_function"), {}),
    ("POST", "/retell/functions/book%5Fappointment", _body("book_appointment", start="soon"), {}),
    ("POST", "/retell/functions/check_availability", _body("check_availability", {"call_id": None}), {}),
    (
        "POST",
        "/retell/functions/check_availability",
        _body("check_availability", {"call_id": None}, service="Haarschnitt"),
        {"X-Retell-Call-Id": "call_from_header"},
    ),
    ("POST", "/retell/functions/check_availability", b"{not json", {}),
    ("POST", "/retell/functions/check_availability", b"[1, 2]", {}),
    ("POST", "/retell/functions/check_availability", DEEP, {}),
    ("POST", "/retell/functions/check_availability", b"x" * 300_000, {}),
]


def _answer(response: httpx.Response) -> tuple[int, dict[str, str], bytes]:
    return response.status_code, dict(response.headers), response.content


async def _both(env: Env, method: str, path: str, raw: bytes, headers: dict[str, str]) -> list[Any]:
    answers = []
    for reach_schema_route in (False, True):
        with schema_route_only(env.app) if reach_schema_route else _nothing():
            response = await env.client.request(method, path, content=raw, headers=headers)
        answers.append(_answer(response))
    return answers


@contextmanager
def _nothing() -> Iterator[None]:
    yield


@pytest.mark.asyncio
async def test_the_serving_route_answers_as_the_schema_route_would(db_url: str) -> None:
    async with running_service(db_url) as env:
        for method, path, raw, extra in CASES:
            for headers in (_signed(raw, **extra), {"Content-Type": "application/json", **extra}):
                served, described = await _both(env, method, path, raw, headers)
                assert served == described, (path, raw[:60], headers.keys())
        statuses = set()
        for method in ("GET", "PUT", "DELETE", "HEAD"):
            served, described = await _both(env, method, "/retell/functions/check_availability", b"", {})
            assert served == described, method
            statuses.add(served[0])
        assert statuses == {405}


@pytest.mark.asyncio
async def test_the_serving_route_serves_and_the_schema_describes_the_operation_once(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_service(db_url) as env:
        seen: list[str] = []
        serving = retell.route.app

        async def recording(scope: Any, receive: Any, send: Any) -> None:
            seen.append(scope["path"])
            await serving(scope, receive, send)

        monkeypatch.setattr(retell.route, "app", recording)
        raw = _body("check_availability", service="Haarschnitt")
        assert (await env.client.post("/retell/functions/check_availability", content=raw)).status_code == 401
        response = await env.client.post(
            "/retell/functions/check_availability", content=raw, headers=_signed(raw)
        )
        assert response.status_code == 200
        assert seen == ["/retell/functions/check_availability"] * 2
        operations = env.app.openapi()["paths"][retell.PATH]
        assert list(operations) == ["post"]
        assert operations["post"]["responses"]["200"]["content"]["application/json"]["schema"][
            "$ref"
        ].endswith("/FunctionAnswer")

"""Validate recorded exchanges against Cal.com's OpenAPI document (OpenAPI 3.0).

Known gaps of the document, handled explicitly rather than by loosening everything:

* slot items are ``{start}`` objects in Cal.com's code, strings in the document, and the slots
  schema describes the ``data`` map without the ``{status, data}`` envelope — we validate
  ``data`` against the document's *range* variant (objects with ``start``/``end``);
* ``status`` on GET /v2/bookings is an array in the document; Cal.com's DTO splits a comma list,
  which is what the client sends;
* error bodies are undocumented; they are checked against the envelopes in
  tests/contract/data/BEHAVIOUR.md §1;
* the document's ``oneOf`` unions (regular / recurring / seated / instant) are not discriminated
  (no ``additionalProperties: false``), so a regular booking matches several branches; the
  envelope is checked with ``oneOf`` read as ``anyOf`` and the payload strictly against the
  variant we mean (``INTENDED``).
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import httpx
from jsonschema import Draft4Validator
from openapi_schema_validator import OAS30Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

SPEC_URI = "urn:calcom:openapi-v2-bookings-slots"
SPEC_NAME = "openapi-v2-bookings-slots.json"

NEST_ERROR = {
    "type": "object",
    "required": ["status", "timestamp", "path", "error"],
    "properties": {
        "status": {"enum": ["error"]},
        "timestamp": {"type": "string"},
        "path": {"type": "string"},
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        },
    },
}
BARE_ERROR = {
    "type": "object",
    "required": ["statusCode", "message"],
    "properties": {"statusCode": {"type": "integer"}, "message": {"type": "string"}},
}


# The branch of each undiscriminated union that a regular (non-seated, non-recurring) call uses.
INTENDED_REQUEST = {
    ("POST", "/v2/bookings"): "CreateBookingInput_2024_08_13",
    ("POST", "/v2/bookings/{bookingUid}/cancel"): "CancelBookingInput_2024_08_13",
    ("POST", "/v2/bookings/{bookingUid}/reschedule"): "RescheduleBookingInput_2024_08_13",
}
INTENDED_DATA = {
    ("POST", "/v2/bookings"): "BookingOutput_2024_08_13",
    ("GET", "/v2/bookings/{bookingUid}"): "BookingOutput_2024_08_13",
    ("POST", "/v2/bookings/{bookingUid}/cancel"): "BookingOutput_2024_08_13",
    ("POST", "/v2/bookings/{bookingUid}/reschedule"): "BookingOutput_2024_08_13",
    ("POST", "/v2/slots/reservations"): "ReserveSlotOutput_2024_09_04",
}


def spec_path() -> Path:
    """The vendored copy (tests/contract/data/README.md gives its source): the tests never skip."""
    return Path(__file__).resolve().parents[1] / "contract" / "data" / SPEC_NAME


@cache
def load_spec() -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(spec_path().read_text(encoding="utf-8"))
    return spec


@cache
def _registry() -> Registry:
    resource = Resource.from_contents(load_spec(), default_specification=DRAFT4)
    return Registry().with_resource(SPEC_URI, resource)


def validate(instance: Any, schema: dict[str, Any]) -> None:
    """Validate against a schema fragment whose ``$ref``s point into the document."""
    OAS30Validator(schema, registry=_registry()).validate(instance)


def component(name: str) -> dict[str, Any]:
    return {"$ref": f"{SPEC_URI}#/components/schemas/{name}"}


def _rebase(schema: Any) -> Any:
    """Point in-document ``#/...`` refs at the registered resource; read a top ``oneOf`` as anyOf."""
    if isinstance(schema, dict):
        return {
            ("anyOf" if k == "oneOf" else k): (
                f"{SPEC_URI}{v}" if k == "$ref" and str(v).startswith("#") else _rebase(v)
            )
            for k, v in schema.items()
        }
    if isinstance(schema, list):
        return [_rebase(v) for v in schema]
    return schema


def operation(method: str, path: str) -> tuple[str, dict[str, Any]]:
    for template, item in load_spec()["paths"].items():
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
        if re.match(pattern, path) and method.lower() in item:
            return template, item[method.lower()]
    raise AssertionError(f"{method} {path} is not in the OpenAPI document")


def check_request(request: httpx.Request) -> None:
    template, op = operation(request.method, request.url.path)
    query = dict(request.url.params)
    for param in op.get("parameters", []):
        name, where = param["name"], param["in"]
        if where == "header":
            value = request.headers.get(name)
        elif where == "query":
            value = query.pop(name, None)
        else:
            continue
        if value is None:
            assert not param.get("required"), f"{template}: missing required {where} {name}"
            continue
        schema = param.get("schema") or {}
        if name == "cal-api-version":
            assert value == schema["default"], f"{template}: cal-api-version {value}"
        validate(_coerce(value, schema), _rebase(schema))
    assert not query, f"{template}: undocumented query parameters {sorted(query)}"
    body = op.get("requestBody")
    if body is not None:
        assert request.headers.get("content-type", "").startswith("application/json")
        payload = json.loads(request.content)
        validate(payload, _rebase(body["content"]["application/json"]["schema"]))
        intended = INTENDED_REQUEST.get((request.method, template))
        if intended is not None:
            validate(payload, component(intended))


def _coerce(value: str, schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    if kind == "number":
        return float(value)
    if kind == "array":
        return value.split(",")
    return value


def check_response(request: httpx.Request, response: httpx.Response) -> None:
    template, op = operation(request.method, request.url.path)
    body = response.json()
    if response.is_error:
        Draft4Validator(BARE_ERROR if "statusCode" in body else NEST_ERROR).validate(body)
        return
    documented = op["responses"].get(str(response.status_code))
    assert documented is not None, f"{template}: undocumented status {response.status_code}"
    schema = documented["content"]["application/json"]["schema"]
    if template == "/v2/slots":
        assert body["status"] == "success"
        range_variant = next(v for v in schema["oneOf"] if "Range" in v.get("title", ""))
        validate(body["data"], _rebase(range_variant))
        return
    validate(body, _rebase(schema))
    intended = INTENDED_DATA.get((request.method, template))
    if intended is not None:
        validate(body["data"], component(intended))
    elif template == "/v2/bookings":
        for item in body["data"]:
            validate(item, component("BookingOutput_2024_08_13"))


class RecordingTransport(httpx.AsyncBaseTransport):
    """Wraps a transport and keeps every request/response pair for contract checks."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.exchanges: list[tuple[httpx.Request, httpx.Response]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        content = await response.aread()
        recorded = httpx.Response(
            response.status_code, headers=response.headers, content=content, request=request
        )
        self.exchanges.append((request, recorded))
        return httpx.Response(
            response.status_code, headers=response.headers, content=content, request=request
        )

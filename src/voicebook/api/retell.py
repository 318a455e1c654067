"""Retell custom functions: ``POST /retell/functions/{name}``.

Two routes for one operation. ``route`` serves it: a plain Starlette route, placed before the routers, that
calls the same dependency functions FastAPI would (``verified_retell_body``, ``get_function_deps``) and the
same ``respond``. ``router``'s FastAPI route is the operation's description for the OpenAPI schema (the
API docs, and schemathesis, which fuzzes every operation in it); a request only reaches it if ``route`` is
not installed. Why: this is the one route Retell calls during a conversation, once or more per turn, and
FastAPI's request machinery (dependency resolution, parameter extraction, an exit stack per request) cost
about 0.1 ms of CPU per call, a third of the whole web layer's (measured on issue 17), for a route whose
parameters are one path segment, one optional header and a body that must be checked against its
signature as raw bytes anyway.

Both answer identically: errors are raised as ``HTTPException`` and answered by the app's exception
handlers either way, and the 405 for another method comes from Starlette's route matching in both.
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Header
from fastapi.responses import Response
from starlette.requests import Request
from starlette.routing import Route

from voicebook.api import functions
from voicebook.api.deps import (
    FunctionDepsDep,
    RetellBody,
    SignedBody,
    get_function_deps,
    verified_retell_body,
)
from voicebook.api.schemas import FunctionAnswer

__all__ = ["PATH", "respond", "route", "router"]

PATH: Final = "/retell/functions/{name}"
router = APIRouter(tags=["retell"])


async def respond(name: str, body: SignedBody, call_id: str | None, deps: functions.FunctionDeps) -> Response:
    """The answer to one verified function call, as both routes send it."""
    answer = await functions.answer(name, body.data, call_id, deps)
    # Serialised here, once: returned as a model, it would be validated against ``response_model``
    # again and then serialised. ``response_model`` stays for the OpenAPI schema.
    return Response(answer.model_dump_json(exclude_none=True), media_type="application/json")


async def serve_function_call(request: Request) -> Response:
    """What the FastAPI route below does, without FastAPI's dependency resolution."""
    body = await verified_retell_body(request)
    deps = await get_function_deps(request)
    return await respond(request.path_params["name"], body, request.headers.get("x-retell-call-id"), deps)


route: Final = Route(PATH, serve_function_call, methods=["POST"])


@router.post(
    PATH,
    response_model=FunctionAnswer,
    response_model_exclude_none=True,
    status_code=200,
    summary="A Retell custom function call (check_availability, book_appointment, ...)",
    responses={400: {"description": "body is not JSON"}, 401: {"description": "bad or missing signature"}},
)
async def function_call(
    name: str,
    body: RetellBody,
    deps: FunctionDepsDep,
    x_retell_call_id: Annotated[str | None, Header()] = None,
) -> Response:
    return await respond(name, body, x_retell_call_id, deps)

"""Retell custom functions: ``POST /retell/functions/{name}``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import Response

from voicebook.api import functions
from voicebook.api.deps import FunctionDepsDep, RetellBody
from voicebook.api.schemas import FunctionAnswer

router = APIRouter(tags=["retell"])


@router.post(
    "/retell/functions/{name}",
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
    answer = await functions.answer(name, body.data, x_retell_call_id, deps)
    # Serialised here, once: returned as a model, it would be validated against ``response_model``
    # again and then serialised. ``response_model`` stays for the OpenAPI schema.
    return Response(answer.model_dump_json(exclude_none=True), media_type="application/json")

"""Exception handlers: every failure becomes a stable JSON body, never a traceback."""

from __future__ import annotations

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from voicebook.errors import VoicebookError

log = structlog.get_logger("voicebook.api")


def install(app: FastAPI) -> None:
    @app.exception_handler(VoicebookError)
    async def _voicebook_error(_request: Request, exc: VoicebookError) -> JSONResponse:
        return JSONResponse(
            status_code=exc.status_code,
            content={"ok": False, "status": type(exc).__name__, "message": exc.message},
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(
            status_code=400, content={"ok": False, "status": "invalid_input", "message": "invalid request"}
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("api.unexpected_error", path=request.url.path, error=type(exc).__name__)
        return JSONResponse(
            status_code=500,
            content={"ok": False, "status": "internal_error", "message": "internal error"},
        )

"""Liveness, readiness and metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from sqlalchemy import text

from voicebook import metrics

router = APIRouter(tags=["ops"])

READY_TIMEOUT_SECONDS = 3.0


@router.get("/healthz", summary="Process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Database reachable", responses={503: {"description": "database down"}})
async def readyz(request: Request, response: Response) -> dict[str, str]:
    engine = request.app.state.engine
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS), engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:
        response.status_code = 503
        return {"status": "unavailable", "database": "unreachable"}
    return {"status": "ok", "database": "ok"}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def prometheus_metrics() -> Response:
    body, content_type = metrics.render_metrics()
    return Response(body, media_type=content_type)

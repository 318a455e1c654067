"""The admin page's static files (its stylesheet and icon), served from the package.

A file rather than an inline ``<style>``: the Content-Security-Policy (``api.security_headers``) then needs
no ``'unsafe-inline'``, and an injected ``<style>`` or ``style=`` attribute does nothing. A fixed set of
names is served, read once and kept in memory: there is no path from a URL to the file system.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Final

from fastapi import APIRouter, HTTPException, Response

router = APIRouter(tags=["admin"], include_in_schema=False)

_FILES: Final = {"admin.css": "text/css; charset=utf-8", "favicon.svg": "image/svg+xml"}
_DIRECTORY: Final = Path(__file__).parent / "static"


@cache
def _read(name: str) -> bytes:
    return (_DIRECTORY / name).read_bytes()


@router.get("/admin/assets/{name}")
async def asset(name: str) -> Response:
    media_type = _FILES.get(name)
    if media_type is None:
        raise HTTPException(status_code=404)
    return Response(_read(name), media_type=media_type, headers={"Cache-Control": "public, max-age=3600"})


@router.get("/favicon.ico")
async def favicon() -> Response:
    """Browsers ask for /favicon.ico whatever the page links; an icon is public and holds nothing."""
    return await asset("favicon.svg")

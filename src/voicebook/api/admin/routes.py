"""The operator's page (``GET /admin``) and its JSON (``GET /api/...``), behind the admin token.

Access: ``Authorization: Bearer <VOICEBOOK_ADMIN_TOKEN>``, or the session cookie set by the login form,
because a browser cannot send a bearer header from the address bar. The cookie never holds the token
itself: it is ``<issued unix time>.<HMAC-SHA256(token, issued)>``, HttpOnly and SameSite=Strict, valid
for ``SESSION_SECONDS``, and changing the token logs every browser out. Without a configured token the
whole surface answers 503, so an unset variable can never mean "open to everyone".

The page is rendered on the server (Jinja2, inline SVG, CSS and the favicon as static files beside the
templates; no inline script): no build step, no CDN, nothing that breaks when the operator's network
blocks third-party hosts. Personal data arrives already masked from
``voicebook.reporting``.

Jinja2 (with Starlette's template response) and Babel are imported when the first page is rendered, not
when the app is built: most workers never render the page, and both stay in memory once loaded. That they
are installed is still checked here, at import, so a missing one stops the start as it did before.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel

from voicebook.api.admin.auth import (
    AUTH_RESPONSES,
    BEARER,
    COOKIE,
    SESSION_SECONDS,
    Access,
    AdminAccess,
    admin_token,
    check_access,
    session_cookie,
)
from voicebook.api.admin.chart import build_chart
from voicebook.api.admin.language import REQUIRED, TEXT, Formatter, pick_language
from voicebook.api.deps import SessionDep
from voicebook.api.params import CompanyId, OlderThanSeconds, WindowMoment
from voicebook.api.parsing import parse_form
from voicebook.db.credentials import connection_states
from voicebook.reporting import dashboard, figures

if TYPE_CHECKING:
    from fastapi.templating import Jinja2Templates


def _require_installed(*names: str) -> None:
    """Fail now, not at the first page view, when a library the page imports on first use is missing."""
    for name in names:
        if find_spec(name) is None:  # finds the package without importing it
            raise ModuleNotFoundError(f"{name} is not installed: the operator's page needs it", name=name)


_require_installed("jinja2", *REQUIRED)

router = APIRouter(tags=["admin"])


# --- rendering ---------------------------------------------------------------------------------------


@cache
def _templates() -> Jinja2Templates:
    """Built on first use, not at import (house rule: nothing instantiated at import time)."""
    from fastapi.templating import Jinja2Templates  # lazy: Jinja2 only once a page is rendered (see above)

    return Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def _page(request: Request, name: str, lang: str, status_code: int, **context: Any) -> HTMLResponse:
    headers = {"Cache-Control": "no-store", **(BEARER if status_code == 401 else {})}
    fmt = Formatter(lang)
    return _templates().TemplateResponse(
        request,
        name,
        {"t": TEXT[lang], "lang": lang, "fmt": fmt, "when": fmt.when, **context},
        status_code=status_code,
        headers=headers,
    )


def _language(request: Request) -> str:
    return pick_language(request.query_params.get("lang"), request.headers.get("accept-language"))


def _login_page(request: Request, lang: str, access: Access, error: bool = False) -> HTMLResponse:
    if access is Access.DISABLED:
        return _page(request, "admin_login.html", lang, 503, disabled=True, error=False)
    return _page(request, "admin_login.html", lang, 401, disabled=False, error=error)


@router.get(
    "/admin",
    summary="Operator's page",
    response_class=HTMLResponse,
    status_code=200,
    responses=AUTH_RESPONSES,
)
async def admin_page(request: Request, session: SessionDep) -> HTMLResponse:
    lang = _language(request)
    access = check_access(request)
    if access is not Access.GRANTED:
        return _login_page(request, lang, access)
    board = await dashboard.dashboard(session)
    chart = build_chart(board.hourly, board.zone, TEXT[lang])
    connections = await connection_states(session)  # never a secret: slugs, states, base URLs
    return _page(request, "admin.html", lang, 200, board=board, chart=chart, connections=connections)


@router.post(
    "/admin/login",
    summary="Exchange the admin token for a session cookie",
    response_class=HTMLResponse,
    status_code=303,
    responses=AUTH_RESPONSES,
)
async def admin_login(request: Request) -> Response:
    # Parsed by hand: an urlencoded form with one field does not justify python-multipart.
    form = parse_form(await request.body())
    lang = pick_language((form or {}).get("lang") or None, request.headers.get("accept-language"))
    token = admin_token(request)
    if token is None:
        return _login_page(request, lang, Access.DISABLED)
    if form is None:
        return _login_page(request, lang, Access.DENIED, error=True)
    given = form.get("token", "").strip()
    if not hmac.compare_digest(given.encode(), token.encode()):
        return _login_page(request, lang, Access.DENIED, error=True)
    response = RedirectResponse(f"/admin?lang={lang}", status_code=303)
    response.set_cookie(
        COOKIE,
        session_cookie(token),
        max_age=SESSION_SECONDS,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/admin/logout", summary="Forget the session cookie", status_code=303)
async def admin_logout(request: Request) -> RedirectResponse:
    response = RedirectResponse(f"/admin?lang={_language(request)}", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


# --- JSON ---------------------------------------------------------------------------------------------


class RejectionOut(BaseModel):
    layer: str
    verdict: str
    count: int


class StuckAttemptOut(BaseModel):
    attempt_id: str
    call_id: str
    company: str | None
    state: str
    start_at: datetime
    updated_at: datetime
    age_seconds: float
    tries: int
    attendee_email: str


class GuardEventOut(BaseModel):
    at: datetime
    layer: str
    verdict: str
    reason: str
    call_id: str | None
    attempt_id: str | None
    calcom_booking_uid: str | None
    company: str | None


class SummaryOut(BaseModel):
    start: datetime
    end: datetime
    company_id: int | None
    attempts: int
    attempts_by_state: dict[str, int]
    booked_appointments: int
    rejections: int
    rejection_rate: float
    guard_rejections: list[RejectionOut]
    idempotent_replays: int
    calls: int
    stuck_attempts: int
    oldest_stuck_seconds: float


def _stuck_out(s: figures.StuckAttempt) -> StuckAttemptOut:
    return StuckAttemptOut.model_validate(s, from_attributes=True)


@router.get(
    "/api/summary",
    summary="Booking health figures for a time window (default: the last 24 hours)",
    response_model=SummaryOut,
    status_code=200,
    responses=AUTH_RESPONSES,
)
async def api_summary(
    _: AdminAccess,
    session: SessionDep,
    since: Annotated[
        WindowMoment | None, Query(description="window start, ISO-8601 (UTC if no offset)")
    ] = None,
    until: Annotated[WindowMoment | None, Query(description="window end (exclusive), default now")] = None,
    company_id: Annotated[CompanyId | None, Query()] = None,
) -> SummaryOut:
    end = _aware(until) if until else datetime.now(UTC)
    start = _aware(since) if since else end - timedelta(hours=24)
    f = await figures.figures(session, start, end, company_id)
    return SummaryOut(
        start=f.start,
        end=f.end,
        company_id=f.company_id,
        attempts=f.attempts,
        attempts_by_state=f.attempts_by_state,
        booked_appointments=f.booked_appointments,
        rejections=f.rejections,
        rejection_rate=f.rejection_rate,
        guard_rejections=[RejectionOut.model_validate(r, from_attributes=True) for r in f.guard_rejections],
        idempotent_replays=f.idempotent_replays,
        calls=f.calls,
        stuck_attempts=len(f.stuck),
        oldest_stuck_seconds=f.oldest_stuck_seconds,
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@router.get(
    "/api/guard-events",
    summary="The newest guard events (rejections, duplicates, replays, reconciler actions)",
    response_model=list[GuardEventOut],
    status_code=200,
    responses=AUTH_RESPONSES,
)
async def api_guard_events(
    _: AdminAccess,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[GuardEventOut]:
    events = await dashboard.recent_guard_events(session, limit)
    return [GuardEventOut.model_validate(e, from_attributes=True) for e in events]


@router.get(
    "/api/attempts/stuck",
    summary="Attempts stuck in sent/unknown: Cal.com may hold a booking we have not recorded",
    response_model=list[StuckAttemptOut],
    status_code=200,
    responses=AUTH_RESPONSES,
)
async def api_stuck_attempts(
    _: AdminAccess,
    session: SessionDep,
    older_than_seconds: Annotated[OlderThanSeconds, Query()] = figures.DEFAULT_STUCK_AFTER.total_seconds(),
) -> list[StuckAttemptOut]:
    stuck = await figures.stuck_attempts(session, older_than=timedelta(seconds=older_than_seconds))
    return [_stuck_out(s) for s in stuck]

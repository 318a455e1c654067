"""The operator's page (``GET /admin``) and its JSON (``GET /api/...``), behind the admin token.

Access: ``Authorization: Bearer <VOICEBOOK_ADMIN_TOKEN>``, or the session cookie set by the login form,
because a browser cannot send a bearer header from the address bar. The cookie never holds the token
itself: it is ``<issued unix time>.<HMAC-SHA256(token, issued)>``, HttpOnly and SameSite=Strict, valid
for ``SESSION_SECONDS``, and changing the token logs every browser out. Without a configured token the
whole surface answers 503, so an unset variable can never mean "open to everyone".

The page is rendered on the server (Jinja2, inline SVG, inline CSS): no build step, no CDN, nothing that
breaks when the operator's network blocks third-party hosts. Personal data arrives already masked from
``voicebook.booking.report``.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Final
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel

from voicebook.api.deps import SessionmakerDep
from voicebook.booking import report
from voicebook.settings import Settings

router = APIRouter(tags=["admin"])

COOKIE: Final = "voicebook_admin"
SESSION_SECONDS: Final = 12 * 3600
DISABLED: Final = "admin disabled: set VOICEBOOK_ADMIN_TOKEN"
LANGS: Final = ("de", "en")
_BEARER: Final = {"WWW-Authenticate": "Bearer"}
_AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or wrong admin token"},
    503: {"description": DISABLED},
}


class Access(Enum):
    GRANTED = "granted"
    DENIED = "denied"
    DISABLED = "disabled"


def _admin_token(request: Request) -> str | None:
    settings: Settings = request.app.state.settings
    return settings.admin_token.get_secret_value() if settings.admin_token else None


def _session_mac(token: str, issued: int) -> str:
    return hmac.new(token.encode(), f"voicebook-admin:{issued}".encode(), hashlib.sha256).hexdigest()


def session_cookie(token: str, issued: int | None = None) -> str:
    """The cookie value for a login at ``issued`` (unix seconds): proves the token without holding it."""
    issued = int(time.time()) if issued is None else issued
    return f"{issued}.{_session_mac(token, issued)}"


def _valid_cookie(token: str, value: str) -> bool:
    issued_text, _, mac = value.partition(".")
    if not issued_text.isdigit():
        return False
    issued = int(issued_text)
    if not -60 <= time.time() - issued <= SESSION_SECONDS:
        return False
    return hmac.compare_digest(mac.encode(), _session_mac(token, issued).encode())


def check_access(request: Request) -> Access:
    """Bearer header or session cookie, compared in constant time."""
    token = _admin_token(request)
    if token is None:
        return Access.DISABLED
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
        return Access.GRANTED
    cookie = request.cookies.get(COOKIE)
    if cookie and _valid_cookie(token, cookie):
        return Access.GRANTED
    return Access.DENIED


def require_admin(request: Request) -> None:
    """Dependency of the JSON endpoints: 503 when no token is configured, 401 when it is not presented."""
    access = check_access(request)
    if access is Access.DISABLED:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=DISABLED)
    if access is Access.DENIED:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="admin token required", headers=_BEARER)


AdminAccess = Annotated[None, Depends(require_admin)]


# --- language -------------------------------------------------------------------------------------

TEXT: Final[dict[str, dict[str, str]]] = {
    "de": {
        "title": "voicebook – Betrieb",
        "login_title": "Anmeldung",
        "token": "Admin-Token",
        "login": "Anmelden",
        "logout": "Abmelden",
        "wrong_token": "Falsches Token.",
        "disabled": "Die Admin-Seite ist abgeschaltet: VOICEBOOK_ADMIN_TOKEN setzen.",
        "last_24h": "Letzte 24 Stunden",
        "attempts": "Buchungsversuche",
        "booked": "Gebucht",
        "rejected": "Abgewiesen",
        "rejection_rate": "Abweisungsquote",
        "replays": "Idempotente Wiederholungen",
        "calls": "Anrufe",
        "chart": "Buchungen und Abweisungen pro Stunde (48 h)",
        "today_calls": "Anrufe heute",
        "today_appointments": "Termine heute",
        "guard_events": "Guard-Ereignisse",
        "stuck": "Hängende Versuche (sent/unknown)",
        "none": "Keine.",
        "time": "Zeit",
        "company": "Firma",
        "caller": "Anrufer",
        "status": "Status",
        "duration": "Dauer",
        "service": "Leistung",
        "name": "Name",
        "email": "E-Mail",
        "phone": "Telefon",
        "layer": "Ebene",
        "verdict": "Urteil",
        "reason": "Grund",
        "state": "Zustand",
        "slot": "Termin",
        "age": "Alter",
        "tries": "Versuche",
        "updated": "Stand",
    },
    "en": {
        "title": "voicebook – operations",
        "login_title": "Sign in",
        "token": "Admin token",
        "login": "Sign in",
        "logout": "Sign out",
        "wrong_token": "Wrong token.",
        "disabled": "The admin page is disabled: set VOICEBOOK_ADMIN_TOKEN.",
        "last_24h": "Last 24 hours",
        "attempts": "Booking attempts",
        "booked": "Booked",
        "rejected": "Rejected",
        "rejection_rate": "Rejection rate",
        "replays": "Idempotent replays",
        "calls": "Calls",
        "chart": "Bookings and rejections per hour (48 h)",
        "today_calls": "Today's calls",
        "today_appointments": "Today's appointments",
        "guard_events": "Guard events",
        "stuck": "Stuck attempts (sent/unknown)",
        "none": "None.",
        "time": "Time",
        "company": "Company",
        "caller": "Caller",
        "status": "Status",
        "duration": "Duration",
        "service": "Service",
        "name": "Name",
        "email": "E-mail",
        "phone": "Phone",
        "layer": "Layer",
        "verdict": "Verdict",
        "reason": "Reason",
        "state": "State",
        "slot": "Slot",
        "age": "Age",
        "tries": "Tries",
        "updated": "As of",
    },
}
_DATETIME_FORMAT: Final = {"de": "%d.%m.%Y %H:%M", "en": "%Y-%m-%d %H:%M"}


def pick_language(query: str | None, accept_language: str | None) -> str:
    """``?lang=`` wins, then the best of Accept-Language by q-value; German when neither says."""
    if query in LANGS:
        return query
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGS and quality > 0:
            ranked.append((-quality, position, primary))
    return min(ranked)[2] if ranked else "de"


# --- chart ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    height: float
    kind: str  # "booked" | "rejected"
    title: str


@dataclass(frozen=True)
class Tick:
    x: float
    y: float
    label: str


@dataclass(frozen=True)
class Chart:
    """An SVG bar chart laid out in Python, so the template only draws rectangles and text."""

    width: int
    height: int
    left: int
    top: int
    plot_width: float
    plot_height: float
    bar_width: float
    bars: list[Bar]
    x_ticks: list[Tick]
    y_ticks: list[Tick]


def build_chart(
    series: list[report.HourBucket], zone: Any, text: dict[str, str], width: int = 960, height: int = 240
) -> Chart:
    """Two bars per hour (booked, rejected), a y axis scaled to the busiest hour, a label every 6 h."""
    left, top, bottom, right = 40, 12, 28, 8
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max([1, *(b.booked for b in series), *(b.rejected for b in series)])
    slot = plot_w / max(len(series), 1)
    bar_w = slot * 0.4
    bars: list[Bar] = []
    x_ticks: list[Tick] = []
    for i, bucket in enumerate(series):
        local = bucket.hour.astimezone(zone)
        x0 = left + i * slot
        for offset, kind, value in ((0.1, "booked", bucket.booked), (0.5, "rejected", bucket.rejected)):
            h = plot_h * value / peak
            title = f"{local:%d.%m. %H:00} – {text[kind]}: {value}"
            bars.append(
                Bar(round(x0 + slot * offset, 2), round(top + plot_h - h, 2), round(h, 2), kind, title)
            )
        if local.hour % 6 == 0:
            x_ticks.append(Tick(round(x0, 2), top + plot_h + 16, f"{local:%d.%m. %H:00}"))
    y_ticks = [
        Tick(left - 6, round(top + plot_h - plot_h * v / peak, 2), str(v))
        for v in sorted({0, peak // 2, peak})
    ]
    return Chart(width, height, left, top, plot_w, plot_h, round(bar_w, 2), bars, x_ticks, y_ticks)


# --- rendering ---------------------------------------------------------------------------------------


@cache
def _templates() -> Jinja2Templates:
    """Built on first use, not at import (house rule: nothing instantiated at import time)."""
    return Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def _page(request: Request, name: str, lang: str, status_code: int, **context: Any) -> HTMLResponse:
    headers = {"Cache-Control": "no-store", **(_BEARER if status_code == 401 else {})}
    fmt = _DATETIME_FORMAT[lang]

    def when(moment: datetime | None) -> str:
        return moment.strftime(fmt) if moment else "–"

    return _templates().TemplateResponse(
        request,
        name,
        {"t": TEXT[lang], "lang": lang, "when": when, **context},
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
    responses=_AUTH_RESPONSES,
)
async def admin_page(request: Request, sessionmaker: SessionmakerDep) -> HTMLResponse:
    lang = _language(request)
    access = check_access(request)
    if access is not Access.GRANTED:
        return _login_page(request, lang, access)
    async with sessionmaker() as session:
        board = await report.dashboard(session)
    chart = build_chart(board.hourly, board.zone, TEXT[lang])
    return _page(request, "admin.html", lang, 200, board=board, chart=chart)


@router.post(
    "/admin/login",
    summary="Exchange the admin token for a session cookie",
    response_class=HTMLResponse,
    status_code=303,
    responses=_AUTH_RESPONSES,
)
async def admin_login(request: Request) -> Response:
    # Parsed by hand: an urlencoded form with one field does not justify python-multipart.
    form = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=10)
    lang = pick_language(form.get("lang", [""])[0] or None, request.headers.get("accept-language"))
    token = _admin_token(request)
    given = (form.get("token") or [""])[0].strip()
    if token is None:
        return _login_page(request, lang, Access.DISABLED)
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


def _stuck_out(s: report.StuckAttempt) -> StuckAttemptOut:
    return StuckAttemptOut.model_validate(s, from_attributes=True)


@router.get(
    "/api/summary",
    summary="Booking health figures for a time window (default: the last 24 hours)",
    response_model=SummaryOut,
    status_code=200,
    responses=_AUTH_RESPONSES,
)
async def api_summary(
    _: AdminAccess,
    sessionmaker: SessionmakerDep,
    since: Annotated[datetime | None, Query(description="window start, ISO-8601 (UTC if no offset)")] = None,
    until: Annotated[datetime | None, Query(description="window end (exclusive), default now")] = None,
    company_id: Annotated[int | None, Query()] = None,
) -> SummaryOut:
    end = _aware(until) if until else datetime.now(UTC)
    start = _aware(since) if since else end - timedelta(hours=24)
    async with sessionmaker() as session:
        f = await report.figures(session, start, end, company_id)
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
    responses=_AUTH_RESPONSES,
)
async def api_guard_events(
    _: AdminAccess,
    sessionmaker: SessionmakerDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[GuardEventOut]:
    async with sessionmaker() as session:
        events = await report.recent_guard_events(session, limit)
    return [GuardEventOut.model_validate(e, from_attributes=True) for e in events]


@router.get(
    "/api/attempts/stuck",
    summary="Attempts stuck in sent/unknown: Cal.com may hold a booking we have not recorded",
    response_model=list[StuckAttemptOut],
    status_code=200,
    responses=_AUTH_RESPONSES,
)
async def api_stuck_attempts(
    _: AdminAccess,
    sessionmaker: SessionmakerDep,
    older_than_seconds: Annotated[float, Query(ge=0)] = report.DEFAULT_STUCK_AFTER.total_seconds(),
) -> list[StuckAttemptOut]:
    async with sessionmaker() as session:
        stuck = await report.stuck_attempts(session, older_than=timedelta(seconds=older_than_seconds))
    return [_stuck_out(s) for s in stuck]

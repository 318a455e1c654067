"""A typed async client for the Cal.com v2 endpoints the booking flow needs.

The ``httpx.AsyncClient`` is built outside (``transport.build_http_client``) so tests and the
sandbox can swap the transport. This class owns version headers, error mapping, the retry policy
and response parsing; it never resends a mutating request whose outcome is unknown: a write is
resent only after a failure before it left (connect error) or Cal.com's 429, never after a 5xx,
a read timeout or a reset (``transport.is_retryable_status``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from voicebook.calcom import versions
from voicebook.calcom.errors import (
    NOTHING_SENT,
    CalcomRejected,
    error_for_response,
    error_for_transport,
    malformed_response,
)
from voicebook.calcom.schemas import (
    BOOKINGS_API_VERSION,
    SLOTS_API_VERSION,
    BookingOutput,
    BookingsPage,
    CancelBookingInput,
    CreateBookingAttendee,
    CreateBookingInput,
    Envelope,
    EventTypeOutput,
    EventTypesEnvelope,
    RescheduleBookingInput,
    ReservationOutput,
    ReserveSlotInput,
    Slot,
    SlotsEnvelope,
    to_utc_iso,
)
from voicebook.calcom.transport import (
    RetryableFailure,
    Sleep,
    is_retryable_status,
    retry_policy,
)

logger = logging.getLogger(__name__)

OnResponse = Callable[[str, int | str, float], None]
"""``(endpoint, status or exception name, seconds)`` per attempt, for metrics."""

LIST_PAGE_SIZE = 100
# A lookup that needs more pages than this is not a lookup; fail rather than loop or truncate.
LIST_MAX_PAGES = 50

M = TypeVar("M", bound=BaseModel)

# Parametrised once at import: ``Envelope[X]`` looks the generic up (or builds it) on every use.
BookingEnvelope = Envelope[BookingOutput]
ReservationEnvelope = Envelope[ReservationOutput]

# The paths that are the same for every request (no uid or team id in them): see ``CalcomClient._url``.
FIXED_PATHS = frozenset({"/v2/slots", "/v2/bookings", "/v2/slots/reservations", "/v2/event-types"})


class CalcomClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        on_response: OnResponse | None = None,
        retry_sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._http = http
        self._on_response = on_response
        self._sleep = retry_sleep
        self._urls: dict[str, tuple[httpx.URL, httpx.URL]] = {}  # path -> (base URL, absolute URL)
        auth = http.headers.get("Authorization", "")
        self._secret: str | None = auth.split(" ", 1)[1] if " " in auth else (auth or None)

    def __repr__(self) -> str:
        return f"CalcomClient(base_url={str(self._http.base_url)!r})"

    # --- endpoints ------------------------------------------------------------------------------

    async def get_slots(
        self, event_type_id: int, start: datetime, end: datetime, time_zone: str | None = None
    ) -> list[Slot]:
        params: dict[str, str] = {
            "eventTypeId": str(event_type_id),
            "start": to_utc_iso(start),
            "end": to_utc_iso(end),
        }
        if time_zone:
            params["timeZone"] = time_zone
        response = await self._request(
            "slots.get", "GET", "/v2/slots", version=SLOTS_API_VERSION, params=params
        )
        return self._parse(SlotsEnvelope, response, "slots.get", mutating=False).starts()

    async def create_booking(
        self,
        *,
        event_type_id: int,
        start: datetime,
        name: str,
        time_zone: str,
        email: str | None = None,
        phone_number: str | None = None,
        language: str | None = None,
        metadata: dict[str, str] | None = None,
        booking_fields_responses: dict[str, Any] | None = None,
    ) -> BookingOutput:
        try:
            body = CreateBookingInput(
                start=to_utc_iso(start),
                event_type_id=event_type_id,
                attendee=CreateBookingAttendee(
                    name=name,
                    time_zone=time_zone,
                    email=email,
                    phone_number=phone_number,
                    language=language,
                ),
                metadata=metadata or {},
                booking_fields_responses=booking_fields_responses,
            )
        except ValidationError as exc:
            raise CalcomRejected(400, "ClientValidation", _validation_text(exc)) from None
        response = await self._request(
            "bookings.create",
            "POST",
            "/v2/bookings",
            version=BOOKINGS_API_VERSION,
            json=body.wire(),
            mutating=True,
        )
        return self._booking(response, "bookings.create", mutating=True)

    async def get_booking(self, uid: str) -> BookingOutput | None:
        response = await self._request(
            "bookings.get",
            "GET",
            f"/v2/bookings/{_segment(uid)}",
            version=BOOKINGS_API_VERSION,
            allow_404=True,
        )
        if response.status_code == 404:
            return None
        return self._booking(response, "bookings.get", mutating=False)

    async def list_bookings(
        self,
        *,
        attendee_email: str | None = None,
        event_type_id: int | None = None,
        after_start: datetime | None = None,
        before_end: datetime | None = None,
        after_created_at: datetime | None = None,
        before_created_at: datetime | None = None,
        status: list[str] | None = None,
    ) -> list[BookingOutput]:
        """All matching bookings across pages, or an error — never a silently partial list."""
        params: dict[str, str] = {}
        if attendee_email is not None:
            params["attendeeEmail"] = attendee_email
        if event_type_id is not None:
            params["eventTypeId"] = str(event_type_id)
        for key, value in (
            ("afterStart", after_start),
            ("beforeEnd", before_end),
            ("afterCreatedAt", after_created_at),
            ("beforeCreatedAt", before_created_at),
        ):
            if value is not None:
                params[key] = to_utc_iso(value)
        if status:
            params["status"] = ",".join(status)
        found: list[BookingOutput] = []
        for page in range(LIST_MAX_PAGES):
            page_params = {**params, "take": str(LIST_PAGE_SIZE), "skip": str(page * LIST_PAGE_SIZE)}
            response = await self._request(
                "bookings.list",
                "GET",
                "/v2/bookings",
                version=BOOKINGS_API_VERSION,
                params=page_params,
            )
            parsed = self._parse(BookingsPage, response, "bookings.list", mutating=False)
            found.extend(parsed.data)
            if not parsed.pagination.has_next_page:
                return found
            if not parsed.data:
                raise malformed_response(
                    "bookings.list", "hasNextPage on an empty page", mutating=False, secret=None
                )
        raise malformed_response(
            "bookings.list", f"more than {LIST_MAX_PAGES} pages", mutating=False, secret=None
        )

    async def cancel_booking(self, uid: str, reason: str | None = None) -> BookingOutput:
        response = await self._request(
            "bookings.cancel",
            "POST",
            f"/v2/bookings/{_segment(uid)}/cancel",
            version=BOOKINGS_API_VERSION,
            json=CancelBookingInput(cancellation_reason=reason).wire(),
            mutating=True,
        )
        return self._booking(response, "bookings.cancel", mutating=True)

    async def reschedule_booking(self, uid: str, start: datetime, reason: str | None = None) -> BookingOutput:
        body = RescheduleBookingInput(start=to_utc_iso(start), rescheduling_reason=reason)
        response = await self._request(
            "bookings.reschedule",
            "POST",
            f"/v2/bookings/{_segment(uid)}/reschedule",
            version=BOOKINGS_API_VERSION,
            json=body.wire(),
            mutating=True,
        )
        return self._booking(response, "bookings.reschedule", mutating=True)

    async def reserve_slot(
        self, event_type_id: int, slot_start: datetime, duration: int | None = None
    ) -> ReservationOutput:
        body = ReserveSlotInput(
            event_type_id=event_type_id, slot_start=to_utc_iso(slot_start), slot_duration=duration
        )
        response = await self._request(
            "slots.reserve",
            "POST",
            "/v2/slots/reservations",
            version=SLOTS_API_VERSION,
            json=body.wire(),
            mutating=True,
        )
        envelope = self._parse(ReservationEnvelope, response, "slots.reserve", mutating=True)
        return envelope.data

    async def list_event_types(self, team_id: int | None = None) -> list[EventTypeOutput]:
        """The account's event types, or a team's (``GET /v2/teams/{teamId}/event-types``)."""
        endpoint = "team_event_types.list" if team_id else "event_types.list"
        path = f"/v2/teams/{int(team_id)}/event-types" if team_id else "/v2/event-types"
        response = await self._request(endpoint, "GET", path, version=versions.EVENT_TYPES_API_VERSION)
        return self._parse(EventTypesEnvelope, response, endpoint, mutating=False).data

    # --- plumbing -------------------------------------------------------------------------------

    async def _request(
        self,
        endpoint: str,
        method: str,
        path: str,
        *,
        version: str,
        params: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
        mutating: bool = False,
        allow_404: bool = False,
    ) -> httpx.Response:
        args = (endpoint, method, path, version, params, json, mutating, allow_404)
        # Most calls succeed (or fail for good) at once; only a retryable failure needs the policy's
        # controller, which is costly to build. It then starts from that failure as its first attempt,
        # so attempts, waits and the budget are exactly what the policy alone would give.
        try:
            return await self._attempt(*args)
        except RetryableFailure as exc:
            first: RetryableFailure | None = exc

        async def attempt() -> httpx.Response:
            nonlocal first
            if first is not None:
                failure, first = first, None
                raise failure
            return await self._attempt(*args)

        try:
            return await retry_policy(self._sleep)(attempt)
        except RetryableFailure as exc:
            raise exc.error from None

    async def _attempt(
        self,
        endpoint: str,
        method: str,
        path: str,
        version: str,
        params: dict[str, str] | None,
        json: dict[str, Any] | None,
        mutating: bool,
        allow_404: bool,
    ) -> httpx.Response:
        started = time.perf_counter()
        try:
            response = await self._http.request(
                method,
                self._url(path),
                params=params,
                json=versions.without_bypass(json),
                headers={"cal-api-version": versions.pinned(endpoint, version)},
            )
        except httpx.TransportError as exc:
            self._report(endpoint, type(exc).__name__, started)
            error = error_for_transport(exc, endpoint=endpoint, mutating=mutating, secret=self._secret)
            if isinstance(exc, NOTHING_SENT):
                raise RetryableFailure(error, None) from exc
            raise error from exc
        self._report(endpoint, response.status_code, started)
        if response.is_success or (allow_404 and response.status_code == 404):
            return response
        error = error_for_response(response, endpoint=endpoint, mutating=mutating, secret=self._secret)
        if is_retryable_status(response.status_code, mutating=mutating):
            raise RetryableFailure(error, getattr(error, "reset_seconds", None))
        raise error

    def _url(self, path: str) -> httpx.URL | str:
        """The absolute URL of a fixed path, made once; any other path as it is, for httpx to merge.

        httpx joins a relative path to the client's ``base_url`` by parsing both again for every request
        (about a third of what it spends building one). An absolute URL is used as it is, so the join is
        done here, once per path and base, the way httpx does it (``base_url`` ends in ``/``; the path's
        leading ``/`` goes): the request goes to exactly the same URL. Only the ``FIXED_PATHS``, so the
        cache stays as small as the set; a path with a uid in it is merged by httpx as before.
        """
        if path not in FIXED_PATHS:
            return path
        base = self._http.base_url
        known = self._urls.get(path)
        if known is not None and known[0] is base:
            return known[1]
        url = base.copy_with(raw_path=base.raw_path + httpx.URL(path).raw_path.lstrip(b"/"))
        self._urls[path] = (base, url)
        return url

    def _report(self, endpoint: str, status: int | str, started: float) -> None:
        if self._on_response is None:
            return
        try:
            self._on_response(endpoint, status, time.perf_counter() - started)
        except Exception:  # a metrics bug must never fail a booking
            logger.exception("calcom on_response hook failed")

    def _booking(self, response: httpx.Response, endpoint: str, *, mutating: bool) -> BookingOutput:
        return self._parse(BookingEnvelope, response, endpoint, mutating=mutating).data

    def _parse(self, model: type[M], response: httpx.Response, endpoint: str, *, mutating: bool) -> M:
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            versions.report_if_fallback(endpoint, response.content)
            raise malformed_response(
                endpoint, _validation_text(exc), mutating=mutating, secret=self._secret
            ) from None


def _segment(uid: str) -> str:
    """A uid is a path segment; refuse anything that could escape it."""
    if not uid or "/" in uid or uid in {".", ".."} or "?" in uid or "#" in uid:
        raise CalcomRejected(400, "ClientValidation", "invalid booking uid")
    return uid


def _validation_text(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in exc.errors()
    )

"""Webhooks: Retell call lifecycle (``/retell/webhook``) and Cal.com bookings (``/calcom/webhook``)."""

from __future__ import annotations

import hashlib
import hmac

import structlog
from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import ValidationError

from voicebook.api.deps import RetellBody, SessionmakerDep, SettingsDep
from voicebook.api.limits import loads_object
from voicebook.api.parsing import signature_matches
from voicebook.booking.service import CallFacts, apply_call_event
from voicebook.calcom import webhook_limits
from voicebook.retell.webhook_limits import BoundedWebhookBody

router = APIRouter(tags=["webhooks"])
log = structlog.get_logger("voicebook.api")


@router.post(
    "/retell/webhook",
    status_code=204,
    response_class=Response,
    summary="Retell call events (call_started, call_ended, call_analyzed)",
    responses={400: {"description": "malformed body"}, 401: {"description": "bad or missing signature"}},
)
async def retell_webhook(body: RetellBody, sessionmaker: SessionmakerDep) -> Response:
    try:
        parsed = BoundedWebhookBody.model_validate(body.data)
    except ValidationError as exc:
        # Field paths only: the values are the caller's and may be personal data.
        problems = sorted({".".join(str(part) for part in e["loc"]) for e in exc.errors()})[:5]
        log.warning("retell.webhook_malformed", problems=problems)
        raise HTTPException(status_code=400, detail="not a Retell webhook body") from None
    call = parsed.call
    analysis = call.call_analysis
    facts = CallFacts(
        call_id=call.call_id,
        from_number=call.from_number,
        to_number=call.to_number,
        agent_id=call.agent_id,
        direction=call.direction,
        status=call.call_status,
        start_ms=call.start_timestamp,
        end_ms=call.end_timestamp,
        duration_ms=call.duration_ms,
        disconnection_reason=call.disconnection_reason,
        summary=analysis.call_summary if analysis else None,
        successful=analysis.call_successful if analysis else None,
    )
    async with sessionmaker() as session, session.begin():
        await apply_call_event(session, parsed.event, facts)
    return Response(status_code=204)


@router.post(
    "/calcom/webhook",
    status_code=200,
    summary="Cal.com booking events (X-Cal-Signature-256 checked)",
    responses={400: {"description": "malformed body"}, 401: {"description": "bad or missing signature"}},
)
async def calcom_webhook(
    request: Request, settings: SettingsDep, sessionmaker: SessionmakerDep
) -> dict[str, str]:
    raw = await request.body()
    secret = settings.calcom_webhook_secret
    given = request.headers.get("x-cal-signature-256")
    if secret is None:
        log.warning("calcom.webhook_refused", detail="VOICEBOOK_CALCOM_WEBHOOK_SECRET is unset")
        raise HTTPException(status_code=401)
    expected = hmac.new(secret.get_secret_value().encode(), raw, hashlib.sha256).hexdigest()
    if not signature_matches(expected, given):
        log.warning("calcom.signature_rejected")
        raise HTTPException(status_code=401)
    event = loads_object(raw, settings.max_json_depth)
    problem = webhook_limits.problem(event)
    if problem is not None:
        log.warning("calcom.webhook_malformed", problem=problem)
        raise HTTPException(status_code=400, detail=f"malformed Cal.com webhook: {problem}")
    from voicebook.booking import calcom_events

    async with sessionmaker() as session, session.begin():
        action = await calcom_events.apply_calcom_event(session, event)
    log.info("calcom.webhook", trigger=event.get("triggerEvent"), action=action)
    return {"status": action}

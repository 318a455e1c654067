"""Webhooks: Retell call lifecycle (``/retell/webhook``) and Cal.com bookings (``/calcom/webhook``)."""

from __future__ import annotations

import structlog
from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import ValidationError

from voicebook.api.deps import CalcomBody, CalcomCompanyBody, CompanySlug, RetellBody, SessionDep
from voicebook.booking.calendar_sync import apply_calendar_change
from voicebook.booking.call_events import CallFacts, apply_call_event
from voicebook.calcom import webhook_limits
from voicebook.calcom.webhooks import parse_change
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
async def retell_webhook(body: RetellBody, session: SessionDep) -> Response:
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
    await apply_call_event(session, parsed.event, facts)
    return Response(status_code=204)


@router.post(
    "/calcom/webhook",
    status_code=200,
    summary="Cal.com booking events (X-Cal-Signature-256 checked)",
    responses={400: {"description": "malformed body"}, 401: {"description": "bad or missing signature"}},
)
async def calcom_webhook(body: CalcomBody, session: SessionDep) -> dict[str, str]:
    problem = webhook_limits.problem(body.data)
    if problem is not None:
        log.warning("calcom.webhook_malformed", problem=problem)
        raise HTTPException(status_code=400, detail=f"malformed Cal.com webhook: {problem}")
    action = await apply_calendar_change(session, parse_change(body.data))
    log.info("calcom.webhook", trigger=str(body.data.get("triggerEvent"))[:64], action=action)
    return {"status": action}


@router.post(
    "/calcom/webhook/{slug}",
    status_code=200,
    summary="One company's Cal.com booking events (checked with that company's own webhook secret)",
    responses={401: {"description": "bad or missing signature, or no such company secret"}},
)
async def calcom_company_webhook(
    slug: CompanySlug, body: CalcomCompanyBody, session: SessionDep, request: Request
) -> dict[str, str]:
    problem = webhook_limits.problem(body.data)
    if problem is not None:
        log.warning("calcom.webhook_malformed", company=slug[:100], problem=problem)
        raise HTTPException(status_code=400, detail=f"malformed Cal.com webhook: {problem}")
    change = parse_change(body.data)
    company_id = getattr(request.state, "company_id", None)
    action = await apply_calendar_change(session, change, company_id=company_id)
    log.info(
        "calcom.webhook", company=slug[:100], trigger=str(body.data.get("triggerEvent"))[:64], action=action
    )
    return {"status": action}

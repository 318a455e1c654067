"""The Retell call webhook with every field bounded to what the ``calls`` table can hold.

``retell.schemas`` is loose on purpose (a new Retell field must never break a live call). The webhook,
though, writes what it receives into ``calls``, and a signed body with ``start_timestamp`` 1e18, a
``call_id`` of 300 characters or a NUL byte in a string made the database raise (PostgreSQL rejects NUL
in text and over-long VARCHARs; SQLite stores anything) and the endpoint answer 500. Here each field
gets the range of its column, so a malformed body is a 400 before any SQL runs, on every database alike.

Identifiers with a NUL byte are refused; free text (the summary) loses its NUL bytes and is cut to
``MAX_SUMMARY_CHARS``, because dropping a whole call's analysis for one stray byte helps nobody.
Unknown fields stay ignored and unknown event names are accepted (the route acknowledges them).
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from voicebook.retell.schemas import RetellCall

__all__ = ["MAX_SUMMARY_CHARS", "MAX_TIMESTAMP_MS", "BoundedCall", "BoundedWebhookBody", "call_fits"]

# 2100-01-01T00:00:00Z in ms: past it a "call start" is no time a call happened.
MAX_TIMESTAMP_MS: Final = 4_102_444_800_000
MAX_DURATION_MS: Final = 10 * 24 * 3600 * 1000
MAX_SUMMARY_CHARS: Final = 20_000


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("contains a NUL byte")
    return value


def _clean_text(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")[:MAX_SUMMARY_CHARS]
    return value


_NoNul = AfterValidator(_no_nul)
CallId = Annotated[str, StringConstraints(min_length=1, max_length=128), _NoNul]
Short = Annotated[str, StringConstraints(max_length=16), _NoNul]
# A caller ID may be withheld, "anonymous" or a SIP URI: stored whole, up to the column (calls.from_number).
Number = Annotated[str, StringConstraints(max_length=255), _NoNul]
Status = Annotated[str, StringConstraints(max_length=32), _NoNul]
Reason = Annotated[str, StringConstraints(max_length=64), _NoNul]
AgentId = Annotated[str, StringConstraints(max_length=128), _NoNul]
EventName = Annotated[str, StringConstraints(max_length=64), _NoNul]
Timestamp = Annotated[int, Field(ge=0, le=MAX_TIMESTAMP_MS)]
FreeText = Annotated[str, BeforeValidator(_clean_text)]


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class BoundedAnalysis(_Loose):
    call_summary: FreeText | None = None
    call_successful: bool | None = None


class BoundedCall(_Loose):
    call_id: CallId
    agent_id: AgentId | None = None
    from_number: Number | None = None
    to_number: Number | None = None
    direction: Short | None = None
    call_status: Status | None = None
    start_timestamp: Timestamp | None = None
    end_timestamp: Timestamp | None = None
    duration_ms: Annotated[int, Field(ge=0, le=MAX_DURATION_MS)] | None = None
    disconnection_reason: Reason | None = None
    call_analysis: BoundedAnalysis | None = None


class BoundedWebhookBody(_Loose):
    event: EventName
    call: BoundedCall


def call_fits(call: RetellCall) -> bool:
    """Whether a function call's (loosely parsed) call object fits the columns it is written to.

    Function calls keep the loose ``RetellCall`` so a new Retell field never breaks a live call; only
    the fields we store are checked here, and a call that does not fit is answered as invalid input.
    """
    try:
        BoundedCall.model_validate(
            {
                "call_id": call.call_id,
                "from_number": call.from_number,
                "to_number": call.to_number,
            }
        )
    except ValueError:
        return False
    return True

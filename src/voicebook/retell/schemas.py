"""What Retell sends us, modelled loosely on purpose.

Retell adds fields to its call object without notice and most of them are optional depending on
the event, so only ``call_id`` is required and unknown fields are ignored: a new Retell field must
never turn a live call's function request into a 400.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "CallAnalysis",
    "FunctionCallBody",
    "RetellCall",
    "WebhookBody",
    "split_function_body",
]


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class CallAnalysis(_Loose):
    call_summary: str | None = None
    call_successful: bool | None = None
    user_sentiment: str | None = None
    in_voicemail: bool | None = None
    custom_analysis_data: dict[str, Any] | None = None


class RetellCall(_Loose):
    call_id: str = Field(min_length=1)
    agent_id: str | None = None
    call_type: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    direction: str | None = None
    call_status: str | None = None
    start_timestamp: int | None = None  # ms since the epoch
    end_timestamp: int | None = None
    duration_ms: int | None = None
    disconnection_reason: str | None = None
    call_analysis: CallAnalysis | None = None
    metadata: dict[str, Any] | None = None
    retell_llm_dynamic_variables: dict[str, Any] | None = None


class FunctionCallBody(_Loose):
    name: str
    call: RetellCall | None = None
    args: dict[str, Any] = Field(default_factory=dict)


class WebhookBody(_Loose):
    event: str
    call: RetellCall


def _is_wrapped(raw: Mapping[str, Any]) -> bool:
    # Only the wrapper has an object under ``args``; checking ``name`` instead would mistake an
    # args-only book_appointment body (whose ``name`` is the caller's name) for a wrapped one.
    return isinstance(raw.get("args"), dict)


def split_function_body(
    raw: Mapping[str, Any], header_call_id: str | None
) -> tuple[dict[str, Any], RetellCall | None]:
    """Separate the arguments from the call for both body shapes Retell can send.

    Wrapped ``{name, call, args}``: the call comes from the body (the header id only if the body has
    no usable call). Args only (``args_at_root``): the call id comes from ``X-Retell-Call-Id`` or
    else an argument ``call_id``. ``call`` is None when no id can be found; the caller decides
    whether that is acceptable (idempotency keys need it). Never raises for JSON input.
    """
    if _is_wrapped(raw):
        args = dict(raw["args"])
        call_raw = raw.get("call")
        if isinstance(call_raw, dict):
            try:
                return args, RetellCall.model_validate(call_raw)
            except ValidationError:
                pass
        return args, _call_from_id(header_call_id or args.get("call_id"))
    args = dict(raw)
    return args, _call_from_id(header_call_id or args.get("call_id"))


def _call_from_id(call_id: object) -> RetellCall | None:
    if isinstance(call_id, str) and call_id.strip():
        return RetellCall(call_id=call_id.strip())
    return None

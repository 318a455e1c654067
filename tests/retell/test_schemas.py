import json
from pathlib import Path
from typing import Any

from voicebook.retell.schemas import FunctionCallBody, WebhookBody, split_function_body

DATA = Path(__file__).parent / "data"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text(encoding="utf-8"))
    return data


def test_wrapped_function_call() -> None:
    raw = load("function_call_book_appointment.json")
    body = FunctionCallBody.model_validate(raw)
    assert body.name == "book_appointment"
    assert body.call is not None
    assert body.call.call_id == "call_7f3c2a9e41b84d0c9a6e5d21b07"
    args, call = split_function_body(raw, header_call_id="call_from_header")
    assert args["attendee_name"] == "Maria Gonzalez"
    assert call is not None
    assert call.call_id == "call_7f3c2a9e41b84d0c9a6e5d21b07"
    assert call.from_number == "+12125550147"
    assert call.metadata == {"tenant_id": "clinic_042"}


def test_args_only_body_takes_call_id_from_header() -> None:
    raw = {"service": "Haarschnitt", "name": "Anna", "start": "2026-03-10T09:00"}
    args, call = split_function_body(raw, header_call_id="call_abc")
    assert args == raw
    assert call is not None
    assert call.call_id == "call_abc"


def test_args_only_body_takes_call_id_from_argument() -> None:
    args, call = split_function_body({"name": "Anna", "call_id": "call_arg"}, None)
    assert args["name"] == "Anna"
    assert call is not None
    assert call.call_id == "call_arg"


def test_header_wins_over_argument_and_no_id_gives_none() -> None:
    _, call = split_function_body({"call_id": "call_arg"}, "call_hdr")
    assert call is not None
    assert call.call_id == "call_hdr"
    assert split_function_body({"name": "Anna"}, None) == ({"name": "Anna"}, None)
    assert split_function_body({"call_id": 5}, None)[1] is None


def test_wrapped_body_with_unusable_call_falls_back_to_header() -> None:
    raw = {"name": "check_availability", "call": {"agent_id": "a"}, "args": {"service": "x"}}
    args, call = split_function_body(raw, "call_hdr")
    assert args == {"service": "x"}
    assert call is not None
    assert call.call_id == "call_hdr"


def test_webhooks_parse_and_ignore_unknown_fields() -> None:
    started = WebhookBody.model_validate(load("webhook_call_started.json"))
    assert started.event == "call_started"
    assert started.call.start_timestamp == 1795532531418
    ended = WebhookBody.model_validate(load("webhook_call_ended.json"))
    assert ended.call.duration_ms == 276484
    assert ended.call.disconnection_reason == "user_hangup"
    assert ended.call.call_analysis is None


def test_call_analyzed() -> None:
    raw = load("webhook_call_ended.json")
    raw["event"] = "call_analyzed"
    raw["call"]["call_analysis"] = {
        "call_summary": "Booked a cleaning.",
        "call_successful": True,
        "user_sentiment": "Positive",
        "in_voicemail": False,
        "brand_new_field": 1,
    }
    body = WebhookBody.model_validate(raw)
    assert body.call.call_analysis is not None
    assert body.call.call_analysis.call_successful is True
    assert body.call.call_analysis.user_sentiment == "Positive"

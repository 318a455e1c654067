import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from voicebook.retell.arguments import FUNCTION_NAMES

TOOLS = Path(__file__).parents[2] / "deploy" / "retell" / "tools.json"
REQUIRED = {
    "check_availability": {"service"},
    "book_appointment": {"service", "start", "name"},
    "cancel_appointment": set(),
    "reschedule_appointment": {"new_start"},
}
PROPERTIES = {
    "check_availability": {"service", "date", "time"},
    "book_appointment": {"service", "start", "name", "phone", "email", "notes"},
    "cancel_appointment": {"phone", "start"},
    "reschedule_appointment": {"phone", "start", "new_start"},
}


def tools() -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(TOOLS.read_text(encoding="utf-8"))
    return data


def test_the_four_functions() -> None:
    assert sorted(t["name"] for t in tools()) == sorted(FUNCTION_NAMES)


@pytest.mark.parametrize("tool", tools(), ids=lambda t: t["name"])
def test_tool_definition(tool: dict[str, Any]) -> None:
    name = tool["name"]
    assert tool["type"] == "custom"
    assert tool["method"] == "POST"
    assert tool["url"] == f"https://YOUR-VOICEBOOK-HOST/retell/functions/{name}"
    assert tool["description"]
    assert isinstance(tool["speak_during_execution"], bool)
    assert isinstance(tool["speak_after_execution"], bool)
    assert 1000 <= tool["timeout_ms"] <= 120_000
    assert 0 < tool["max_retry"] <= 5  # safe: the endpoint is idempotent
    params = tool["parameters"]
    jsonschema.Draft202012Validator.check_schema(params)
    assert params["type"] == "object"
    assert set(params["properties"]) == PROPERTIES[name]
    assert set(params["required"]) == REQUIRED[name]
    assert all(p["type"] == "string" and p["description"] for p in params["properties"].values())


def test_schema_accepts_the_contract_example() -> None:
    book = next(t for t in tools() if t["name"] == "book_appointment")
    jsonschema.validate(
        {"service": "Haarschnitt", "start": "2026-03-10T09:00", "name": "Jürgen Müller"},
        book["parameters"],
    )
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"service": "Haarschnitt"}, book["parameters"])

"""Build a request exactly as Retell sends it: the wrapped function-call body and its signature.

Used by ``voicebook call`` and the tests, so both speak to the server the way Retell does.
"""

from __future__ import annotations

import json
from typing import Any

from voicebook.retell.signature import sign_body


def function_call_body(
    function: str, args: dict[str, Any], *, call_id: str, from_number: str | None, to_number: str | None
) -> dict[str, Any]:
    call = {"call_id": call_id, "from_number": from_number, "to_number": to_number, "direction": "inbound"}
    return {"name": function, "call": call, "args": args}


def signed(body: dict[str, Any], api_key: str) -> tuple[bytes, dict[str, str]]:
    """The raw bytes and the headers; the signature covers exactly these bytes."""
    raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    return raw, {"Content-Type": "application/json", "X-Retell-Signature": sign_body(raw, api_key)}

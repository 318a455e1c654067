"""The optional JSON state file, so a restarted standalone sandbox keeps its bookings."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from voicebook.calcom.sandbox.models import SandboxEventType, StoredBooking


def write_state(
    path: Path,
    next_id: int,
    event_types: Iterable[SandboxEventType],
    bookings: Iterable[StoredBooking],
) -> None:
    """Atomic rewrite, so a crash mid-write never leaves a truncated state file."""
    state = {
        "next_id": next_id,
        "event_types": [et.to_json() for et in event_types],
        "bookings": [b.to_json() for b in bookings],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".sandbox-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(state, handle, indent=1)
    os.replace(tmp, path)


def read_state(path: Path) -> tuple[int, list[SandboxEventType], list[StoredBooking]]:
    state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return (
        int(state.get("next_id", 1)),
        [SandboxEventType.from_json(et) for et in state.get("event_types", [])],
        [StoredBooking.from_json(b) for b in state.get("bookings", [])],
    )

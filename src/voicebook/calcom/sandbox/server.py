"""Serve the sandbox over real HTTP (``voicebook sandbox --port 8010``).

Standalone, faults must look like a network: a read-timeout fault hangs (``hang_seconds``) so the
client's own timeout fires, and a connection reset drops the socket mid-answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from voicebook.calcom.sandbox.app import Sandbox
from voicebook.calcom.sandbox.models import SandboxEventType


def build(
    *,
    state_file: str | Path | None = None,
    control_enabled: bool = False,
    event_types: Iterable[SandboxEventType] = (),
    webhook_url: str | None = None,
    webhook_secret: str | None = None,
    api_key: str | None = None,
    hang_seconds: float = 30.0,
) -> Sandbox:
    return Sandbox(
        state_file=state_file,
        control_enabled=control_enabled,
        event_types=event_types,
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
        api_key=api_key,
        in_process=False,
        hang_seconds=hang_seconds,
    )


def run(
    host: str = "127.0.0.1",
    port: int = 8010,
    state_file: str | Path | None = None,
    control_enabled: bool = False,
    *event_types: SandboxEventType,
    webhook_url: str | None = None,
    webhook_secret: str | None = None,
    api_key: str | None = None,
    hang_seconds: float = 30.0,
    log_level: str = "info",
    log_config: dict[str, Any] | None = LOGGING_CONFIG,
) -> None:
    """Blocks serving; pass ``log_config=None`` when the caller already configured logging."""
    sandbox = build(
        state_file=state_file,
        control_enabled=control_enabled,
        event_types=event_types,
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
        api_key=api_key,
        hang_seconds=hang_seconds,
    )
    uvicorn.run(sandbox.app, host=host, port=port, log_level=log_level, log_config=log_config)

"""The sandbox's notion of "now", so tests can replay an incident minutes apart without sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class SandboxClock:
    """Frozen at ``start`` when given (deterministic tests), else real UTC time plus an offset."""

    def __init__(self, start: datetime | None = None) -> None:
        if start is not None and start.tzinfo is None:
            raise ValueError("SandboxClock needs an aware datetime")
        self._frozen = start.astimezone(UTC) if start is not None else None
        self._offset = timedelta()

    def now(self) -> datetime:
        if self._frozen is not None:
            return self._frozen
        return datetime.now(UTC) + self._offset

    def set(self, when: datetime) -> None:
        """Freeze the clock at ``when``."""
        if when.tzinfo is None:
            raise ValueError("SandboxClock needs an aware datetime")
        self._frozen = when.astimezone(UTC)

    def advance(self, delta: timedelta | float) -> datetime:
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        if self._frozen is not None:
            self._frozen += step
        else:
            self._offset += step
        return self.now()

    @property
    def frozen(self) -> bool:
        return self._frozen is not None

"""Switchable failures, so tests and demos can reproduce every outcome the client must survive.

A fault applies to one endpoint (the client's metric names, e.g. ``"bookings.create"``) or ``"*"``,
fires ``times`` times (``None``: until cleared) with ``probability``, and for the failure kinds
runs ``"before"`` the request is processed (nothing stored) or ``"after"`` (the change is stored
but the caller never learns it — the ambiguous case).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

FaultKind = Literal[
    "latency",  # sleep latency_seconds (or uniform up to latency_max_seconds), then proceed
    "read_timeout",  # the client's read times out
    "connection_reset",  # the connection drops without a (complete) response
    "http_error",  # answer ``status`` (5xx) in Cal.com's error envelope; "after": stored, then e.g. 503
    "rate_limit",  # answer 429 with X-RateLimit-*-Default headers (reset_seconds)
    "skip_availability",  # create ignores availability, so mechanism B's 409 can fire
]
Phase = Literal["before", "after"]

ENDPOINTS = (
    "bookings.create",
    "bookings.get",
    "bookings.list",
    "bookings.cancel",
    "bookings.reschedule",
    "slots.get",
    "slots.reserve",
    "event_types.list",
    "team_event_types.list",
)
_DEFAULT_PHASE: dict[str, Phase] = {
    "read_timeout": "after",
    "connection_reset": "after",
    "http_error": "before",
}


@dataclass(slots=True)
class Fault:
    kind: FaultKind
    endpoint: str = "*"
    phase: Phase | None = None
    times: int | None = 1
    probability: float = 1.0
    latency_seconds: float = 0.0
    latency_max_seconds: float | None = None
    status: int = 500
    reset_seconds: int = 60

    def __post_init__(self) -> None:
        if self.kind not in get_args(FaultKind):
            raise ValueError(f"unknown fault kind {self.kind!r}")
        if self.endpoint != "*" and self.endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {self.endpoint!r}; one of {ENDPOINTS} or '*'")
        if self.phase is None:
            self.phase = _DEFAULT_PHASE.get(self.kind, "before")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be within [0, 1]")

    def matches(self, endpoint: str) -> bool:
        return self.endpoint in ("*", endpoint) and self.times != 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fault:
        return cls(**data)


class Faults:
    """The active fault list; ``draw`` consumes the faults that fire for one request."""

    def __init__(self, seed: int | None = None) -> None:
        self._faults: list[Fault] = []
        self._rng = random.Random(seed)

    def add(self, fault: Fault) -> Fault:
        self._faults.append(fault)
        return fault

    def inject(self, kind: FaultKind, endpoint: str = "*", **options: Any) -> Fault:
        return self.add(Fault(kind=kind, endpoint=endpoint, **options))

    def clear(self) -> None:
        self._faults.clear()

    def active(self) -> list[Fault]:
        return list(self._faults)

    def draw(self, endpoint: str) -> list[Fault]:
        fired: list[Fault] = []
        for fault in self._faults:
            if not fault.matches(endpoint):
                continue
            if fault.probability < 1.0 and self._rng.random() >= fault.probability:
                continue
            if fault.times is not None:
                fault.times -= 1
            fired.append(fault)
        self._faults = [f for f in self._faults if f.times != 0]
        return fired

    def latency(self, fault: Fault) -> float:
        if fault.latency_max_seconds is None:
            return fault.latency_seconds
        return self._rng.uniform(fault.latency_seconds, fault.latency_max_seconds)

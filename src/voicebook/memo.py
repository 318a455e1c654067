"""A few seconds' memory of answers by key: the one TTL cache behind the configuration caches.

The offering cache (``booking.tenancy``), the company keys of the Retell check (``db.credentials``) and
the calendar registry's company credentials (``calcom.registry``) each keep what the database said for
``ttl_seconds``, so that a changed tenants file is seen within that time and no guarantee rests on the
cache. ``None`` is an answer like any other ("this number has no own key"); a miss is ``fresh`` returning
``None`` instead of a one-tuple.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Memo(Generic[K, V]):
    def __init__(
        self,
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int | None = None,
    ) -> None:
        self._ttl, self._clock, self._max = ttl_seconds, clock, max_entries
        self._entries: dict[K, tuple[float, V]] = {}

    def fresh(self, key: K) -> tuple[V] | None:
        """``(answer,)`` while the kept answer is younger than the TTL (its last instant included in
        the past), else None."""
        hit = self._entries.get(key)
        return (hit[1],) if hit is not None and hit[0] > self._clock() else None

    def now(self) -> float:
        return self._clock()

    def keep(self, key: K, value: V, asked_at: float) -> None:
        """Remember ``value`` for the TTL from ``asked_at`` (``now()`` read before the answer was looked
        up: it is never kept longer than the TTL after the question). When ``max_entries`` are kept,
        forget them all first (a miss only costs the lookup the memo saves)."""
        if self._max is not None and len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[key] = (asked_at + self._ttl, value)

    def forget(self, key: K) -> None:
        """Drop the kept answer (it is known to be stale: the next ``fresh`` misses)."""
        self._entries.pop(key, None)

"""Chooses the calendar: real Cal.com when a key is set, otherwise the built-in sandbox."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voicebook.booking.ports import CalendarGateway
from voicebook.settings import Settings


@dataclass
class CalendarHandle:
    gateway: CalendarGateway
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    sandbox: object | None = None

    async def aclose(self) -> None:
        for close in reversed(self.closers):
            await close()


async def open_calendar(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> CalendarHandle:
    raise NotImplementedError

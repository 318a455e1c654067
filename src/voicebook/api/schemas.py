"""The answer shape of the Retell function endpoint (the contract: README.md, deploy/retell/tools.json)."""

from __future__ import annotations

from pydantic import BaseModel


class AppointmentOut(BaseModel):
    id: int
    calcom_booking_uid: str
    start: str
    service: str


class FunctionAnswer(BaseModel):
    ok: bool
    status: str
    message: str
    appointment: AppointmentOut | None = None
    alternatives: list[str] | None = None
    slots: list[str] | None = None
    options: list[str] | None = None  # ambiguous: the caller's own matching appointments

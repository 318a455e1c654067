"""The operator's page in German and English: its text table and the choice of language per request."""

from __future__ import annotations

from typing import Final

LANGS: Final = ("de", "en")

TEXT: Final[dict[str, dict[str, str]]] = {
    "de": {
        "title": "voicebook – Betrieb",
        "login_title": "Anmeldung",
        "token": "Admin-Token",
        "login": "Anmelden",
        "logout": "Abmelden",
        "wrong_token": "Falsches Token.",
        "disabled": "Die Admin-Seite ist abgeschaltet: VOICEBOOK_ADMIN_TOKEN setzen.",
        "last_24h": "Letzte 24 Stunden",
        "attempts": "Buchungsversuche",
        "booked": "Gebucht",
        "rejected": "Abgewiesen",
        "rejection_rate": "Abweisungsquote",
        "replays": "Idempotente Wiederholungen",
        "calls": "Anrufe",
        "chart": "Buchungen und Abweisungen pro Stunde (48 h)",
        "today_calls": "Anrufe heute",
        "connections": "Kalender der Firmen (eigene Zugangsdaten)",
        "connection_state": "Verbindung",
        "today_appointments": "Termine heute",
        "guard_events": "Guard-Ereignisse",
        "stuck": "Hängende Versuche (sent/unknown)",
        "none": "Keine.",
        "time": "Zeit",
        "company": "Firma",
        "caller": "Anrufer",
        "status": "Status",
        "duration": "Dauer",
        "service": "Leistung",
        "name": "Name",
        "email": "E-Mail",
        "phone": "Telefon",
        "layer": "Ebene",
        "verdict": "Urteil",
        "reason": "Grund",
        "state": "Zustand",
        "slot": "Termin",
        "age": "Alter",
        "tries": "Versuche",
        "updated": "Stand",
    },
    "en": {
        "title": "voicebook – operations",
        "login_title": "Sign in",
        "token": "Admin token",
        "login": "Sign in",
        "logout": "Sign out",
        "wrong_token": "Wrong token.",
        "disabled": "The admin page is disabled: set VOICEBOOK_ADMIN_TOKEN.",
        "last_24h": "Last 24 hours",
        "attempts": "Booking attempts",
        "booked": "Booked",
        "rejected": "Rejected",
        "rejection_rate": "Rejection rate",
        "replays": "Idempotent replays",
        "calls": "Calls",
        "chart": "Bookings and rejections per hour (48 h)",
        "today_calls": "Today's calls",
        "connections": "Companies' calendars (own credentials)",
        "connection_state": "Connection",
        "today_appointments": "Today's appointments",
        "guard_events": "Guard events",
        "stuck": "Stuck attempts (sent/unknown)",
        "none": "None.",
        "time": "Time",
        "company": "Company",
        "caller": "Caller",
        "status": "Status",
        "duration": "Duration",
        "service": "Service",
        "name": "Name",
        "email": "E-mail",
        "phone": "Phone",
        "layer": "Layer",
        "verdict": "Verdict",
        "reason": "Reason",
        "state": "State",
        "slot": "Slot",
        "age": "Age",
        "tries": "Tries",
        "updated": "As of",
    },
}
DATETIME_FORMAT: Final = {"de": "%d.%m.%Y %H:%M", "en": "%Y-%m-%d %H:%M"}


def pick_language(query: str | None, accept_language: str | None) -> str:
    """``?lang=`` wins, then the best of Accept-Language by q-value; German when neither says."""
    if query in LANGS:
        return query
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGS and quality > 0:
            ranked.append((-quality, position, primary))
    return min(ranked)[2] if ranked else "de"

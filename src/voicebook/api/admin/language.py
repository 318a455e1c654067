"""The operator's page in German and English: its text table, the choice of language per request, and
``Formatter``: statuses, reasons, numbers and dates as a German or English reader expects them (Babel's
CLDR data: "1,5 %" and "Di., 01.12.2026 10:00 MEZ" in German), every time with its zone.

Babel (and its CLDR data) is imported by ``Formatter`` when it first formats, not with this module: the
page is rendered only when an operator opens it, and a serving worker that never renders it should not
carry Babel. ``REQUIRED`` names it for the start-up check in ``routes``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

LANGS: Final = ("de", "en")
REQUIRED: Final = ("babel",)  # imported on first use below

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
        "upcoming_appointments": "Kommende Termine (14 Tage)",
        "unbooked": "Versuche ohne Buchung (24 h)",
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
        "upcoming_appointments": "Upcoming appointments (14 days)",
        "unbooked": "Attempts that did not book (24 h)",
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
DATETIME_FORMAT: Final = {"de": "EEE, dd.MM.yyyy HH:mm z", "en": "EEE, yyyy-MM-dd HH:mm z"}

# Values stored in English (call, appointment and attempt states; attempt failure reasons), as an
# operator reads them. Unknown values are shown as stored, never hidden.
LABELS: Final[dict[str, dict[str, str]]] = {
    "de": {
        "booked": "gebucht",
        "cancelled": "storniert",
        "rescheduled": "verschoben",
        "ongoing": "läuft",
        "ended": "beendet",
        "registered": "angemeldet",
        "not_connected": "nicht verbunden",
        "error": "Fehler",
        "claimed": "angenommen",
        "sent": "gesendet",
        "unknown": "unklar",
        "confirmed": "bestätigt",
        "recorded": "erfasst",
        "failed": "fehlgeschlagen",
        "rejected": "abgewiesen",
        "accepted": "angenommen",
        "idempotent_replay": "idempotente Wiederholung",
        "calendar_unavailable": "Kalender nicht erreichbar",
        "reconciler_failed": "vom Abgleich aufgegeben (Frist abgelaufen)",
        "reconciler_found": "vom Abgleich gefunden",
        "slot_unavailable": "Termin nicht frei",
        "STALE BOOKING DETECTED": "STALE BOOKING DETECTED (alte Buchung, Ebene 1)",
        "CALL ID MISMATCH": "CALL ID MISMATCH (Buchung eines anderen Anrufs, Ebene 2)",
        "DUPLICATE BOOKING ID IN DATABASE": "DUPLICATE BOOKING ID IN DATABASE (schon vergeben, Ebene 3/4)",
        "yes": "ja",
        "no": "nein",
    },
    "en": {
        "calendar_unavailable": "calendar not reachable",
        "reconciler_failed": "given up by the reconciler (deadline passed)",
        "reconciler_found": "found by the reconciler",
        "slot_unavailable": "slot not free",
        "STALE BOOKING DETECTED": "STALE BOOKING DETECTED (an old booking, layer 1)",
        "CALL ID MISMATCH": "CALL ID MISMATCH (another call's booking, layer 2)",
        "DUPLICATE BOOKING ID IN DATABASE": "DUPLICATE BOOKING ID IN DATABASE (already taken, layer 3/4)",
        "idempotent_replay": "idempotent replay",
        "not_connected": "not connected",
    },
}


@dataclass(frozen=True)
class Formatter:
    """What the templates call to show a value in the page's language (``fmt.when(...)`` etc.)."""

    lang: str

    def when(self, moment: datetime | None) -> str:
        """Date and time in the moment's own zone (a company's), with the zone, e.g. "… 10:00 MEZ"."""
        if moment is None:
            return "–"
        from babel.dates import format_datetime  # lazy: see the module's docstring

        return format_datetime(moment, DATETIME_FORMAT[self.lang], tzinfo=moment.tzinfo, locale=self.lang)

    def number(self, value: float) -> str:
        from babel.numbers import format_decimal  # lazy: see the module's docstring

        return format_decimal(value, locale=self.lang)

    def percent(self, ratio: float) -> str:
        from babel.numbers import format_percent  # lazy: see the module's docstring

        return format_percent(ratio, "#,##0.0 %", locale=self.lang)

    def seconds(self, value: float | None) -> str:
        if value is None:
            return "–"
        return f"{self.number(round(value))} s"

    def label(self, value: str | None) -> str:
        """A stored status or reason in the page's language; unknown values as stored."""
        if value is None:
            return "–"
        return LABELS[self.lang].get(value, value.replace("_", " ") if value.islower() else value)


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

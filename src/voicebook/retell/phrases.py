"""The sentence tables behind ``messages``, kept apart so wording changes are reviewable as data.

Short, speakable, no jargon: the model reads them to a caller. Keys of ``INVALID`` are
``(field, code)`` of ``ArgumentError``, with ``None`` as the wildcard.
"""

from __future__ import annotations

from typing import Final, Literal

Lang = Literal["de", "en"]

WEEKDAYS: Final[dict[Lang, tuple[str, ...]]] = {
    "de": ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
MONTHS: Final[dict[Lang, tuple[str, ...]]] = {
    "de": ("Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September",
           "Oktober", "November", "Dezember"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"),
}  # fmt: skip
# "Sonntags haben wir geschlossen" / "We are closed on Sundays": the weekday as a habit, not a date.
WEEKDAYS_HABITUAL: Final[dict[Lang, tuple[str, ...]]] = {
    "de": ("Montags", "Dienstags", "Mittwochs", "Donnerstags", "Freitags", "Samstags", "Sonntags"),
    "en": ("Mondays", "Tuesdays", "Wednesdays", "Thursdays", "Fridays", "Saturdays", "Sundays"),
}
OR: Final[dict[Lang, str]] = {"de": "oder", "en": "or"}
# (singular, plural) of the units a booking window is said in.
UNITS: Final[dict[str, dict[Lang, tuple[str, str]]]] = {
    "minute": {"de": ("Minute", "Minuten"), "en": ("minute", "minutes")},
    "hour": {"de": ("Stunde", "Stunden"), "en": ("hour", "hours")},
    "day": {"de": ("Tag", "Tage"), "en": ("day", "days")},
}

SENTENCES: Final[dict[str, dict[Lang, str]]] = {
    "booked": {
        "de": "Ihr Termin für {service} ist gebucht: {when}.",
        "en": "Your {service} appointment is booked for {when}.",
    },
    "available": {
        "de": "Am {day} ist um {times} noch etwas frei.",
        "en": "On {day} I have {times}.",
    },
    "available_days": {"de": "Frei wäre {slots}.", "en": "I have {slots}."},
    "nothing_free": {
        "de": "An diesem Tag ist leider nichts mehr frei.",
        "en": "Sorry, there is nothing free on that day.",
    },
    "slot_unavailable": {
        "de": "Dieser Termin ist leider nicht frei.",
        "en": "Sorry, that time is not available.",
    },
    "closed_day": {
        "de": "{weekdays} haben wir geschlossen.",
        "en": "We are closed on {weekdays}.",
    },
    "day_full": {
        "de": "Am {day} ist leider nichts mehr frei.",
        "en": "Sorry, there is nothing free on {day}.",
    },
    "rejected_duplicate": {
        "de": "Diesen Termin konnte ich leider nicht bestätigen.",
        "en": "Sorry, I could not confirm that slot.",
    },
    "offer": {"de": "Ich kann Ihnen {slots} anbieten.", "en": "I can offer {slots}."},
    "no_offer": {
        "de": "Soll ich an einem anderen Tag suchen?",
        "en": "Shall I look at another day?",
    },
    "in_progress": {
        "de": "Ich konnte den Termin noch nicht bestätigen; wir rufen Sie zurück oder schicken "
        "Ihnen eine SMS, sobald er feststeht.",
        "en": "I could not confirm it yet; we will call or text you back as soon as it is settled.",
    },
    "cancelled": {
        "de": "Ihr Termin am {when} ist storniert.",
        "en": "Your appointment on {when} is cancelled.",
    },
    "rescheduled": {
        "de": "Ihr Termin ist verschoben auf {when}.",
        "en": "Your appointment is moved to {when}.",
    },
    "service_not_found": {
        "de": "Diese Leistung bieten wir nicht an; möglich sind {services}.",
        "en": "We do not offer that; we offer {services}.",
    },
    "service_not_found_empty": {
        "de": "Diese Leistung bieten wir leider nicht an.",
        "en": "Sorry, we do not offer that.",
    },
    "appointment_not_found": {
        "de": "Unter dieser Telefonnummer habe ich keinen Termin gefunden.",
        "en": "I could not find an appointment for that phone number.",
    },
    "attempt_conflict": {
        "de": "Diesen Termin haben Sie in diesem Anruf schon mit anderen Angaben angefragt; "
        "bitte bestätigen Sie Name und E-Mail noch einmal.",
        "en": "That slot was already requested in this call with different details; "
        "please confirm the name and e-mail once more.",
    },
    "unknown_number": {
        "de": "Über diese Nummer kann ich leider keine Termine vereinbaren.",
        "en": "Sorry, I cannot book appointments through this number.",
    },
    "too_far_ahead": {
        "de": "So weit im Voraus kann ich leider nicht buchen; Termine gibt es höchstens {days} im Voraus.",
        "en": "Sorry, I cannot book that far ahead; appointments are at most {days} ahead.",
    },
    "too_short_notice": {
        "de": "So kurzfristig kann ich leider nicht buchen; bitte wählen Sie einen Termin mindestens "
        "{notice} im Voraus.",
        "en": "Sorry, that is too short notice; please choose a time at least {notice} ahead.",
    },
    "too_short_notice_plain": {
        "de": "So kurzfristig kann ich leider nicht buchen.",
        "en": "Sorry, that is too short notice.",
    },
    "calendar_busy": {
        "de": "Einen Moment bitte, der Kalender ist gerade sehr gefragt; "
        "versuchen wir es gleich noch einmal.",
        "en": "One moment please, the calendar is very busy right now; let us try again in a moment.",
    },
    "calendar_disconnected": {
        "de": "Ich kann gerade leider keine Termine eintragen, weil unser Kalender nicht verbunden ist. "
        "Bitte rufen Sie uns später noch einmal an; das Team ist informiert.",
        "en": "I cannot book appointments right now because our calendar is not connected. "
        "Please call us again later; the team has been told.",
    },
    "upstream_error": {
        "de": "Der Kalender ist gerade nicht erreichbar; bitte versuchen Sie es gleich noch einmal.",
        "en": "The calendar is not reachable right now; please try again in a moment.",
    },
    "ambiguous": {
        "de": "Sie haben mehrere Termine: {options}. Welchen meinen Sie?",
        "en": "You have several appointments: {options}. Which one do you mean?",
    },
    "reschedule_unchanged": {
        "de": "Ihr Termin ist bereits am {when}; da muss ich nichts verschieben.",
        "en": "Your appointment is already on {when}; there is nothing to move.",
    },
    "changed_meanwhile_cancelled": {
        "de": "Ihr Termin wurde gerade eben storniert.",
        "en": "Your appointment was just cancelled.",
    },
    "changed_meanwhile_moved": {
        "de": "Ihr Termin wurde gerade eben verschoben; er ist jetzt am {when}.",
        "en": "Your appointment was just moved; it is now on {when}.",
    },
    "cancelled_meanwhile": {
        "de": "Dieser Termin wurde inzwischen storniert; soll ich einen neuen Termin suchen?",
        "en": "That appointment has been cancelled meanwhile; shall I look for a new one?",
    },
    "change_refused": {
        "de": "Der Kalender hat die Änderung leider abgelehnt; das Team meldet sich bei Ihnen.",
        "en": "The calendar refused the change; the team will get back to you.",
    },
    "too_many_rebooks": {
        "de": "Diesen Termin haben Sie in diesem Anruf schon mehrfach gebucht und storniert; "
        "bitte rufen Sie uns noch einmal an.",
        "en": "That slot was booked and cancelled several times in this call; please call us again.",
    },
}

INVALID: Final[dict[tuple[str | None, str | None], dict[Lang, str]]] = {
    ("date", "past"): {
        "de": "Das Datum liegt in der Vergangenheit.",
        "en": "That date is in the past.",
    },
    ("time", "past"): {
        "de": "Diese Uhrzeit ist heute schon vorbei.",
        "en": "That time has already passed today.",
    },
    (None, "past"): {
        "de": "Das Datum liegt in der Vergangenheit.",
        "en": "That time is in the past.",
    },
    ("service", "missing"): {
        "de": "Mir fehlt noch, welche Leistung Sie möchten.",
        "en": "I still need to know which service you would like.",
    },
    ("name", "missing"): {"de": "Mir fehlt noch Ihr Name.", "en": "I still need your name."},
    ("start", "missing"): {
        "de": "Mir fehlt noch der gewünschte Tag und die Uhrzeit.",
        "en": "I still need the day and time you would like.",
    },
    ("new_start", "missing"): {
        "de": "Mir fehlt noch der neue Tag und die Uhrzeit.",
        "en": "I still need the new day and time.",
    },
    ("call_id", "missing"): {
        "de": "Ich kann diesen Anruf gerade nicht zuordnen; bitte versuchen Sie es gleich noch einmal.",
        "en": "I cannot match this call right now; please try again in a moment.",
    },
    ("phone", "missing"): {
        "de": "Mir fehlt noch Ihre Telefonnummer.",
        "en": "I still need your phone number.",
    },
    (None, "missing"): {
        "de": "Mir fehlt noch eine Angabe.",
        "en": "I am still missing some information.",
    },
    (None, "bad_date"): {
        "de": "Das Datum habe ich nicht verstanden.",
        "en": "I did not understand that date.",
    },
    (None, "bad_time"): {
        "de": "Die Uhrzeit habe ich nicht verstanden.",
        "en": "I did not understand that time.",
    },
    (None, "too_far"): {
        "de": "Das Datum liegt zu weit in der Zukunft.",
        "en": "That date is too far in the future.",
    },
    (None, "nonexistent_time"): {
        "de": "Diese Uhrzeit gibt es an dem Tag wegen der Zeitumstellung nicht.",
        "en": "That time does not exist on that day because the clocks change.",
    },
    (None, "bad_phone"): {
        "de": "Die Telefonnummer scheint nicht zu stimmen.",
        "en": "That phone number does not seem to be valid.",
    },
    (None, "bad_email"): {
        "de": "Die E-Mail-Adresse scheint nicht zu stimmen.",
        "en": "That e-mail address does not seem to be valid.",
    },
    ("name", "too_long"): {"de": "Der Name ist zu lang.", "en": "That name is too long."},
    ("notes", "too_long"): {
        "de": "Die Notiz ist zu lang; bitte fassen Sie sie kürzer.",
        "en": "The note is too long; please keep it shorter.",
    },
    (None, "too_long"): {"de": "Die Angabe ist zu lang.", "en": "That is too long."},
    (None, "unchanged"): {
        "de": "Der neue Termin ist derselbe wie der alte.",
        "en": "The new time is the same as the current one.",
    },
    (None, "unknown_function"): {
        "de": "Das kann ich leider nicht erledigen.",
        "en": "Sorry, I cannot do that.",
    },
    (None, None): {
        "de": "Eine Angabe habe ich nicht verstanden.",
        "en": "I did not understand one of the details.",
    },
}

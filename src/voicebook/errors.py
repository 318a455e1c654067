"""The voicebook error tree.

Every expected outcome is a subclass that knows the HTTP status it maps to, so the API renders
them in one place and never answers with a traceback::

    VoicebookError
    ├── TenantFileError               (a tenants YAML that cannot be loaded)
    ├── InvariantViolated             (the database contradicts a guarantee: a bug or a manual edit)
    ├── ReportWindowError             (a report window that is empty, reversed or not time-zone aware)
    ├── db.duplicates.RestoreError    (an archived duplicate that cannot be put back)
    ├── db.preflight.DatabaseNotReady (the database is missing, unreachable or not migrated)
    ├── retell.errors.ArgumentError   (an argument the agent sent cannot be used)
    └── booking.errors.BookingError
        └── booking.errors.CalendarError (what a calendar backend can answer; see that module)
"""

from __future__ import annotations


class VoicebookError(Exception):
    """Base of every error voicebook raises on purpose."""

    status_code: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TenantFileError(VoicebookError):
    """A tenants file that cannot be loaded; the message names file, entry and problem."""

    status_code = 422


class InvariantViolated(VoicebookError):
    """Something the database guarantees did not hold (a bug, or rows edited by hand); never expected."""


class ReportWindowError(VoicebookError):
    """A report window the caller got wrong (naive datetimes, or start not before end)."""

    status_code = 400

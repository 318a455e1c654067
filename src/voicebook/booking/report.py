"""What operators read: booking health figures for a time window, today's traffic, and trouble spots.

The admin page, its JSON API and ``voicebook report`` all show the same numbers, so they are computed
here once, from the database alone (every worker writes there; Prometheus counters are per process and
reset on restart, so they cannot answer "what happened last Tuesday").

Windows are half-open ``[start, end)`` in UTC. Grouping by hour is done in Python rather than with
``date_trunc``/``strftime``/``DATE_FORMAT``, which differ between SQLite, PostgreSQL and MariaDB; the rows
of a 48-hour window are few enough for that.

Personal data is masked *here*, with the same helpers as the logs, so no caller of this module (page,
JSON, terminal) can show a raw phone number or e-mail address by forgetting to.

The queries live in ``report_figures`` (health figures for a window, stuck attempts) and
``report_dashboard`` (the hourly series, today's traffic, recent guard events, the whole page),
sharing the window and time-zone helpers of ``report_windows``; this module re-exports them.
"""

from __future__ import annotations

from voicebook.booking import report_dashboard, report_figures, report_windows
from voicebook.booking.report_dashboard import (
    AppointmentRow,
    CallRow,
    Dashboard,
    GuardEventRow,
    HourBucket,
    dashboard,
    hourly_series,
    recent_guard_events,
    todays_appointments,
    todays_calls,
)
from voicebook.booking.report_figures import (
    REJECTION_VERDICTS,
    STUCK_STATES,
    Figures,
    RejectionCount,
    StuckAttempt,
    figures,
    stuck_attempts,
)

__all__ = [
    "REJECTION_VERDICTS",
    "STUCK_STATES",
    "AppointmentRow",
    "CallRow",
    "Dashboard",
    "Figures",
    "GuardEventRow",
    "HourBucket",
    "RejectionCount",
    "StuckAttempt",
    "dashboard",
    "figures",
    "hourly_series",
    "recent_guard_events",
    "stuck_attempts",
    "todays_appointments",
    "todays_calls",
]

# Module attributes before the split, outside ``__all__`` as they were; still readable as ``report.X``.
DEFAULT_STUCK_AFTER = report_figures.DEFAULT_STUCK_AFTER
REPLAY_VERDICT = report_figures.REPLAY_VERDICT
ROUTINE_VERDICTS = report_dashboard.ROUTINE_VERDICTS
UTC_ZONE = report_windows.UTC_ZONE

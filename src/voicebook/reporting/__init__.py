"""What operators read: booking health figures for a time window, today's traffic, and trouble spots.

The admin page, its JSON API and ``voicebook report`` all show the same numbers, so they are computed
here once, from the database alone (every worker writes there; Prometheus counters are per process and
reset on restart, so they cannot answer "what happened last Tuesday").

Windows are half-open ``[start, end)`` in UTC. Grouping by hour is done in Python rather than with
``date_trunc``/``strftime``/``DATE_FORMAT``, which differ between SQLite, PostgreSQL and MariaDB; the rows
of a 48-hour window are few enough for that.

Personal data is masked *here*, with the same helpers as the logs, so no caller of this module (page,
JSON, terminal) can show a raw phone number or e-mail address by forgetting to.

    figures.py    health figures for a window, stuck attempts (admin API, ``voicebook report``)
    dashboard.py  the hourly series, today's traffic, recent guard events: the whole admin page
    windows.py    half-open UTC windows and company time zones shared by both

It reads the domain's tables and vocabulary; the domain never imports it.
"""

"""Set-based clean-up of appointments that share a Cal.com booking uid.

The oldest row of each group (earliest ``created_at``, then lowest id) is kept; every other row is copied
whole into ``appointment_duplicates_archive`` and then deleted — a few statements, no per-row loop, the
same SQL on SQLite (≥ 3.25), PostgreSQL and MariaDB (≥ 10.2), all of which have window functions.
Used by migration 0002 and by ``voicebook duplicates``; the SQL must stay valid for that migration.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text

from voicebook.db.base import UTCDateTime, utc_now
from voicebook.errors import VoicebookError

COPIED_COLUMNS = (
    "company_id, service_id, customer_id, call_id, attempt_id, calcom_booking_uid, event_type_id, "
    "start_at, end_at, status, source, attendee_name, attendee_email, rescheduled_from_uid, "
    "created_at, updated_at"
)
DEFAULT_REASON = "duplicate calcom_booking_uid: kept the oldest appointment"

_RANKED = f"""
    SELECT id, {COPIED_COLUMNS},
           ROW_NUMBER() OVER (PARTITION BY calcom_booking_uid ORDER BY created_at, id) AS rn,
           FIRST_VALUE(id) OVER (PARTITION BY calcom_booking_uid ORDER BY created_at, id) AS kept_id
    FROM appointments
    WHERE calcom_booking_uid IN (
        SELECT calcom_booking_uid FROM appointments GROUP BY calcom_booking_uid HAVING COUNT(*) > 1
    )
"""


@dataclass(frozen=True)
class DuplicateGroup:
    calcom_booking_uid: str
    kept_id: int
    removed_ids: tuple[int, ...]


@dataclass(frozen=True)
class ScanResult:
    groups: int
    rows_to_archive: int
    examples: tuple[DuplicateGroup, ...]


def scan(conn: Connection, *, limit: int = 20) -> ScanResult:
    """What a clean-up would do, without changing anything."""
    totals = conn.execute(
        text(
            "SELECT COUNT(*), COALESCE(SUM(n - 1), 0) FROM ("
            " SELECT COUNT(*) AS n FROM appointments GROUP BY calcom_booking_uid HAVING COUNT(*) > 1"
            ") g"
        )
    ).one()
    rows = conn.execute(
        text(
            f"SELECT calcom_booking_uid, kept_id, id FROM ({_RANKED}) r WHERE r.rn > 1 "
            "AND calcom_booking_uid IN (SELECT calcom_booking_uid FROM ("
            " SELECT calcom_booking_uid FROM appointments GROUP BY calcom_booking_uid"
            " HAVING COUNT(*) > 1 ORDER BY calcom_booking_uid LIMIT :limit) l)"
            " ORDER BY calcom_booking_uid, id"
        ),
        {"limit": limit},
    ).all()
    grouped: dict[str, tuple[int, list[int]]] = {}
    for uid, kept_id, row_id in rows:
        grouped.setdefault(uid, (kept_id, []))[1].append(row_id)
    examples = tuple(DuplicateGroup(uid, kept, tuple(ids)) for uid, (kept, ids) in grouped.items())
    return ScanResult(int(totals[0]), int(totals[1]), examples)


def archive_duplicates(conn: Connection, *, reason: str = DEFAULT_REASON) -> int:
    """Copy every duplicate but the oldest into the archive, whole; returns the rows archived."""
    archived_at = UTCDateTime().process_bind_param(utc_now(), conn.dialect)
    result = conn.execute(
        text(
            f"INSERT INTO appointment_duplicates_archive (original_id, {COPIED_COLUMNS}, kept_id, "
            f"reason, archived_at) SELECT id, {COPIED_COLUMNS}, kept_id, :reason, :archived_at "
            f"FROM ({_RANKED}) r WHERE r.rn > 1"
        ),
        {"reason": reason, "archived_at": archived_at},
    )
    return int(result.rowcount or 0)


def delete_archived(conn: Connection) -> int:
    """Delete the appointments whose copies are in the archive (after ``archive_duplicates``)."""
    result = conn.execute(
        text("DELETE FROM appointments WHERE id IN (SELECT original_id FROM appointment_duplicates_archive)")
    )
    return int(result.rowcount or 0)


class RestoreError(VoicebookError):
    """An archived row cannot be put back as asked; the message says why."""


def restore(conn: Connection, archive_id: int, *, replace: bool = False) -> int:
    """Put an archived appointment back under its original id; returns the restored id.

    With the unique index in place the uid can only be held once: ``replace`` archives the current
    holder first (an operator's explicit decision), otherwise a held uid is refused.
    """
    row = (
        conn.execute(
            text(f"SELECT original_id, {COPIED_COLUMNS} FROM appointment_duplicates_archive WHERE id = :id"),
            {"id": archive_id},
        )
        .mappings()
        .first()
    )
    if row is None:
        raise RestoreError(f"no archived appointment with id {archive_id}")
    holder = conn.execute(
        text("SELECT id FROM appointments WHERE calcom_booking_uid = :uid"),
        {"uid": row["calcom_booking_uid"]},
    ).scalar()
    if holder is not None:
        if not replace:
            raise RestoreError(
                f"appointment {holder} holds booking uid {row['calcom_booking_uid']}; "
                "use --replace to archive it and restore this one"
            )
        conn.execute(
            text(
                f"INSERT INTO appointment_duplicates_archive (original_id, {COPIED_COLUMNS}, kept_id, "
                f"reason, archived_at) SELECT id, {COPIED_COLUMNS}, :kept, :reason, :at "
                "FROM appointments WHERE id = :holder"
            ),
            {
                "kept": row["original_id"],
                "reason": f"replaced by restore of archive row {archive_id}",
                "at": UTCDateTime().process_bind_param(utc_now(), conn.dialect),
                "holder": holder,
            },
        )
        conn.execute(text("DELETE FROM appointments WHERE id = :holder"), {"holder": holder})
    columns = ["id", *[c.strip() for c in COPIED_COLUMNS.split(",")]]
    values = {"id": row["original_id"], **{c: row[c] for c in columns[1:]}}
    conn.execute(
        text(
            f"INSERT INTO appointments ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})"
        ),
        values,
    )
    conn.execute(text("DELETE FROM appointment_duplicates_archive WHERE id = :id"), {"id": archive_id})
    return int(row["original_id"])

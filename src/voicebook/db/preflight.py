"""Is the configured database there and migrated? Checked before serving, said in one line with the fix.

Without this, a missing PostgreSQL database or an unmigrated SQLite file surfaces as a couple of hundred
lines of lifespan traceback ending in "Application startup failed", and a command pointed at a SQLite
path that does not exist silently creates an empty file there and then fails on the first table.
"""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import inspect
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import SQLAlchemyError

from voicebook.errors import VoicebookError
from voicebook.settings import to_async_url

UPGRADE = "`voicebook db upgrade`"
# asyncpg: 'database "x" does not exist'; MariaDB/MySQL: (1049, "Unknown database 'x'")
_MISSING_DATABASE = re.compile(r'database "(?P<pg>[^"]+)" does not exist|Unknown database \'(?P<my>[^\']+)\'')


class DatabaseNotReady(VoicebookError):
    """The database the settings name is missing, unreachable or not at the code's migration head."""

    status_code = 503


def sqlite_path(database_url: str) -> Path | None:
    """The file of a SQLite URL, or None (another database, or an in-memory SQLite)."""
    url = make_url(to_async_url(database_url))
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def require_existing_sqlite(database_url: str) -> None:
    path = sqlite_path(database_url)
    if path is not None and not path.exists():
        raise DatabaseNotReady(
            f"no database at {path} — run {UPGRADE} to create it, or set VOICEBOOK_DATABASE_URL"
        )


def describe_database_error(exc: BaseException) -> str:
    """One line for a driver error; the two that have an obvious fix say it."""
    orig = getattr(exc, "orig", None) or exc
    text = (str(orig).splitlines() or [type(orig).__name__])[0]
    missing = _MISSING_DATABASE.search(text)
    if missing:
        database = missing.group("pg") or missing.group("my")
        return f"database {database} does not exist — create it, then {UPGRADE}"
    if "no such table" in text:
        return f"the database is not migrated — run {UPGRADE}"
    return f"database: {text}"


def check_migrated(connection: Connection, heads: tuple[str, ...]) -> None:
    """Raise unless the schema is at one of ``heads`` (run with ``AsyncConnection.run_sync``)."""
    if not inspect(connection).has_table("alembic_version"):
        raise DatabaseNotReady(f"the database is not migrated — run {UPGRADE}")
    current = {row[0] for row in connection.exec_driver_sql("SELECT version_num FROM alembic_version")}
    if not current & set(heads):
        at = ", ".join(sorted(current)) or "none"
        raise DatabaseNotReady(
            f"the database is at migration {at}, this voicebook needs {', '.join(heads)} — run {UPGRADE}"
        )


async def check_ready(database_url: str) -> None:
    """Exists, reachable, migrated to head: else ``DatabaseNotReady`` with the fix in its message."""
    from voicebook.db import migrate
    from voicebook.db.session import make_engine

    require_existing_sqlite(database_url)
    engine = make_engine(database_url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(check_migrated, migrate.current_heads())
    except SQLAlchemyError as exc:
        raise DatabaseNotReady(describe_database_error(exc)) from exc
    except OSError as exc:  # refused, unknown host: the driver's own error, not wrapped by SQLAlchemy
        raise DatabaseNotReady(f"database: {exc}") from exc
    finally:
        await engine.dispose()

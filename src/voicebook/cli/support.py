"""What every ``voicebook`` command shares: one-line errors, the settings and the database pre-check.

Nothing heavy is imported at module level: ``voicebook --help`` and ``voicebook version`` load this
module, and pydantic, SQLAlchemy and structlog together cost about a second of start-up. Exceptions
from those libraries are recognised through ``sys.modules``: if the library was never imported, it
cannot have raised.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from voicebook.errors import VoicebookError

if TYPE_CHECKING:
    from voicebook.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=1)


def _is(exc: BaseException, module: str, name: str) -> bool:
    loaded = sys.modules.get(module)
    kind = getattr(loaded, name, None) if loaded is not None else None
    return isinstance(kind, type) and isinstance(exc, kind)


def explain(exc: BaseException) -> str | None:
    """The one line an operator needs for an expected failure, or None for a bug (keep the traceback)."""
    if isinstance(exc, VoicebookError):
        return exc.message
    if _is(exc, "pydantic", "ValidationError"):
        first = exc.errors()[0]  # type: ignore[attr-defined]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        env = f"VOICEBOOK_{where.upper()}" if first["loc"] else where
        return f"configuration: {env}: {first['msg'].removeprefix('Value error, ')}"
    if _is(exc, "sqlalchemy.exc", "SQLAlchemyError"):
        from voicebook.db.preflight import describe_database_error

        return describe_database_error(exc)
    if isinstance(exc, OSError):
        return str(exc)
    return None


def one_line_errors(func: F) -> F:
    """Turn expected failures into one clear line on stderr and exit 1: never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except BrokenPipeError:
            quiet_broken_pipe()
        except Exception as exc:
            message = explain(exc)
            if message is None:
                raise
            raise fail(message) from None

    return wrapper  # type: ignore[return-value]


def quiet_broken_pipe() -> None:
    """``voicebook report | head``: the reader left, which is not an error; end quietly with rc 0.

    Python would otherwise complain again when it flushes stdout at exit, so stdout is pointed at
    /dev/null first (the recipe in the ``signal`` module's documentation).
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    raise typer.Exit(code=0)


def load_settings() -> Settings:
    """Read and validate the settings, then configure the CLI's logs (warnings only, unless told)."""
    from voicebook.logging import configure_logging
    from voicebook.settings import Settings

    settings = Settings()
    level = settings.log_level if "VOICEBOOK_LOG_LEVEL" in os.environ else "WARNING"
    configure_logging(level, json=True)
    return settings


def require_database(settings: Settings) -> None:
    """Refuse a SQLite file that does not exist, rather than let the driver create an empty one."""
    from voicebook.db.preflight import require_existing_sqlite

    require_existing_sqlite(settings.database_url)

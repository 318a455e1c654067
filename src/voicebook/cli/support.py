"""What every ``voicebook`` command shares: one-line errors and the settings."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from voicebook.errors import VoicebookError
from voicebook.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=1)


def one_line_errors(func: F) -> F:
    """Turn expected failures into one clear line on stderr and exit 1: never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except VoicebookError as exc:
            raise fail(exc.message) from None
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "settings"
            raise fail(f"configuration: {where}: {first['msg']}") from None
        except SQLAlchemyError as exc:
            raise fail(
                f"database: {str(exc.orig if hasattr(exc, 'orig') else exc).splitlines()[0]}"
            ) from None
        except OSError as exc:
            raise fail(str(exc)) from None

    return wrapper  # type: ignore[return-value]


def load_settings() -> Settings:
    return Settings()

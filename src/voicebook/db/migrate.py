"""Alembic, driven from code: the CLI, the app's quick start and the tests all migrate through here.

``voicebook serve`` only asks for ``current_heads`` (its start-up check) and, with one worker, serves from
the same process: importing Alembic there (about 11 MB resident, with Mako and every DDL dialect) would stay
in every serving worker for nothing. So Alembic is imported by the functions that migrate, and the heads
are read from the version files themselves; ``tests/db/test_migrations.py`` pins them to Alembic's.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    from alembic.config import Config  # lazy: only the commands that migrate need Alembic (see above)

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    cfg.set_main_option("file_template", "%%(year)d-%%(month).2d-%%(day).2d_%%(slug)s")
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    from alembic import command  # lazy: only the commands that migrate need Alembic (see above)

    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    from alembic import command  # lazy: only the commands that migrate need Alembic (see above)

    command.downgrade(alembic_config(database_url), revision)


def _revision_ids(path: Path) -> tuple[str | None, tuple[str, ...]]:
    """A version file's ``revision`` and ``down_revision`` (a merge names several), read, not run."""
    found: dict[str, object] = {}
    for node in ast.parse(path.read_text(encoding="utf-8"), str(path)).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
            found[target.id] = ast.literal_eval(value)
    revision, down = found.get("revision"), found.get("down_revision")
    downs = (down,) if isinstance(down, str) else tuple(down) if isinstance(down, list | tuple) else ()
    return (revision if isinstance(revision, str) else None), tuple(str(d) for d in downs)


def current_heads() -> tuple[str, ...]:
    """The head revision(s): those no other revision names as its ``down_revision`` (Alembic's rule).

    Read from the files Alembic would load (``versions/*.py`` but ``__init__*`` and editor locks ``.#*``),
    without importing Alembic or running them.
    """
    revisions: set[str] = set()
    downs: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        if path.name.startswith(("__init__", ".#")):
            continue
        revision, down = _revision_ids(path)
        if revision is not None:
            revisions.add(revision)
            downs.update(down)
    return tuple(sorted(revisions - downs))


async def upgrade_async(database_url: str, revision: str = "head") -> None:
    """``upgrade`` from async code: Alembic's env runs its own event loop, so give it a thread."""
    import asyncio

    await asyncio.to_thread(upgrade, database_url, revision)

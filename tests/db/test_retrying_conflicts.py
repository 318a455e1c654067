"""A transaction the database aborted as a deadlock victim is run again whole; anything else is raised."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.exc import DBAPIError, OperationalError

from voicebook.db.queries import is_transient_conflict, retrying_conflicts


class _MySQLError(Exception):
    pass


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def _wrapped(orig: Exception) -> DBAPIError:
    return OperationalError("INSERT ...", {}, orig)


@pytest.mark.parametrize(
    ("orig", "transient"),
    [
        (_MySQLError(1213, "Deadlock found when trying to get lock"), True),
        (_MySQLError(1205, "Lock wait timeout exceeded"), True),
        (_PgError("40P01"), True),
        (_PgError("40001"), True),
        (_MySQLError(1062, "Duplicate entry"), False),
        (_PgError("23505"), False),
        (_MySQLError("gone away"), False),
    ],
)
def test_which_errors_are_deadlock_victims(orig: Exception, transient: bool) -> None:
    assert is_transient_conflict(_wrapped(orig)) is transient
    assert not is_transient_conflict(orig)


def test_a_deadlock_victim_is_run_again_whole() -> None:
    runs: list[int] = []

    async def work() -> str:
        runs.append(1)
        if len(runs) < 3:
            raise _wrapped(_MySQLError(1213, "Deadlock"))
        return "done"

    assert asyncio.run(retrying_conflicts(work)) == "done"
    assert len(runs) == 3


def test_other_errors_and_the_last_try_are_raised() -> None:
    runs: list[int] = []

    async def other() -> None:
        runs.append(1)
        raise _wrapped(_MySQLError(1062, "Duplicate entry"))

    with pytest.raises(OperationalError):
        asyncio.run(retrying_conflicts(other))
    assert len(runs) == 1

    async def always() -> None:
        runs.append(1)
        raise _wrapped(_PgError("40P01"))

    with pytest.raises(OperationalError):
        asyncio.run(retrying_conflicts(always, tries=2))
    assert len(runs) == 3

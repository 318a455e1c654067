"""Bounded types for query parameters: out of range is a 400 from validation, never a 500 from below.

Each bound is where a value stops meaning anything *and* where something underneath would overflow:
a window at year 1 with an offset overflows ``datetime`` arithmetic, a ``company_id`` past 32 bits overflows
the database's INTEGER (PostgreSQL raises), ``older_than_seconds=1e300`` or ``inf`` overflows
``timedelta``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Final

from pydantic import AfterValidator, Field

__all__ = ["CompanyId", "OlderThanSeconds", "WindowMoment"]

EARLIEST_YEAR: Final = 1970
LATEST_YEAR: Final = 9998  # a day of offset and a 24-hour default window must still fit in datetime
MAX_AGE: Final = timedelta(days=3650)


def _in_window_range(moment: datetime) -> datetime:
    if not EARLIEST_YEAR <= moment.year <= LATEST_YEAR:
        raise ValueError(f"must lie between the years {EARLIEST_YEAR} and {LATEST_YEAR}")
    return moment


WindowMoment = Annotated[datetime, AfterValidator(_in_window_range)]
CompanyId = Annotated[int, Field(ge=1, le=2**31 - 1)]
OlderThanSeconds = Annotated[float, Field(ge=0, le=MAX_AGE.total_seconds(), allow_inf_nan=False)]

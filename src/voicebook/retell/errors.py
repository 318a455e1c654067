"""The one error argument parsing raises, so the endpoint can turn it into a spoken answer.

A Retell function call with bad arguments is answered with HTTP 200, ``ok: false`` and a sentence
(``messages.invalid_input``): a non-2xx would make Retell retry and leave the model with nothing to
say. Hence a single exception type with a machine-readable ``field`` and ``code`` instead of free
text: the message table, metrics and tests all key on the pair.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

from voicebook.errors import VoicebookError

ArgumentCode = Literal[
    "missing",  # a required argument is absent, null, empty or a placeholder like "unknown"
    "invalid",  # wrong JSON type or unusable value (e.g. a name without letters)
    "bad_date",  # not a calendar date we can read
    "bad_time",  # not a time of day / start we can read
    "past",  # the date or start lies before ``now``
    "too_far",  # the date or start lies beyond ``fields.HORIZON_DAYS`` (or at the end of the calendar)
    "nonexistent_time",  # wall time falls into the spring-forward gap of the company zone
    "bad_phone",  # not a valid phone number for the company's region
    "bad_email",  # not a syntactically valid e-mail address
    "too_long",  # longer than the field allows
    "unchanged",  # reschedule to the very same start
    "unknown_function",  # a function name we do not serve
]

ARGUMENT_CODES: Final[frozenset[str]] = frozenset(get_args(ArgumentCode))


class ArgumentError(VoicebookError):
    """An argument the agent sent cannot be used; ``field`` uses the contract's argument names."""

    status_code = 422

    def __init__(self, field: str, code: ArgumentCode) -> None:
        super().__init__(f"invalid argument {field!r}: {code}")
        self.field = field
        self.code: ArgumentCode = code

    def __repr__(self) -> str:
        return f"ArgumentError(field={self.field!r}, code={self.code!r})"

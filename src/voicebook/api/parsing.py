"""Total parsers for what an unauthenticated client controls: cookies, forms, signature headers.

Total means: every input, however long, malformed or non-ASCII, gives an answer (a value or None), never
an exception. Each function here replaced a standard-library call that raises on hostile input and so
turned a request without credentials into a 500 with a traceback: ``int()`` on a Unicode digit that
``str.isdigit()`` accepted (``²``), ``parse_qs(max_num_fields=…)`` raising ``ValueError`` past its limit,
``hmac.compare_digest`` raising ``TypeError`` on a non-ASCII ``str``.
"""

from __future__ import annotations

import hmac
import re
from typing import Final
from urllib.parse import parse_qsl

__all__ = ["MAX_FORM_FIELDS", "parse_form", "parse_issued", "signature_matches"]

MAX_FORM_FIELDS: Final = 10
# Unix seconds: ASCII digits only, and few enough that int() is cheap and the value is a real time.
_ISSUED: Final = re.compile(r"([0-9]{1,12})\.", re.ASCII)


def parse_issued(cookie: str) -> int | None:
    """The issue time of an admin session cookie ``<unix seconds>.<mac>``; None for anything else."""
    match = _ISSUED.match(cookie)
    return int(match.group(1)) if match else None


def parse_form(body: bytes, max_fields: int = MAX_FORM_FIELDS) -> dict[str, str] | None:
    """An ``application/x-www-form-urlencoded`` body as {name: first value}; None when it is not one.

    More than ``max_fields`` fields is refused rather than truncated: no legitimate form of ours has more.
    Bytes that are not UTF-8 are replaced, as a browser would never send them.
    """
    text = body.decode("utf-8", "replace")
    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=max_fields)
    except ValueError:
        return None
    form: dict[str, str] = {}
    for name, value in pairs:
        form.setdefault(name, value)
    return form


def signature_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison of an expected hex digest with a header value of any characters."""
    if not given:
        return False
    # Header values arrive decoded as latin-1, so this gives back the bytes that were sent.
    return hmac.compare_digest(expected.encode("ascii"), given.encode("latin-1", "replace"))

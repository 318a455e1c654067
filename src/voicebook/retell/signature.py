"""Retell's ``X-Retell-Signature`` check, delegated to the official SDK.

The scheme (``v=<ms>,d=<hex HMAC-SHA256(api key, raw body + ms)>``, five minutes either way,
lowercase hex only) is Retell's to define; calling their implementation means a change on their side
arrives with an SDK upgrade instead of a silent mismatch with a hand-written copy. The SDK's
module-level ``verify`` reads the wall clock itself, so we call the same ``symmetric`` verifier it
wraps, passing ``now`` explicitly for deterministic tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final, cast

from pydantic import SecretStr
from retell.lib import webhook_auth

__all__ = ["MAX_SKEW_MS", "sign_body", "verify_signature"]

MAX_SKEW_MS: Final[int] = webhook_auth.FIVE_MINUTES

_SYMMETRIC = cast(dict[str, Callable[..., Any]], webhook_auth.symmetric)
_sdk_sign: Final = _SYMMETRIC["sign"]
_sdk_verify: Final = _SYMMETRIC["verify"]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def verify_signature(body: bytes, header: str | None, api_key: SecretStr, now_ms: int | None = None) -> bool:
    """True only for a fresh, correct signature of exactly these bytes; never raises.

    Any failure (missing or malformed header, a body that is not UTF-8, an SDK surprise) is a
    rejection: the endpoint answers 401 and Retell's retry gets another chance, which is safer than
    a 500 or, worse, accepting an unsigned booking request.
    """
    if not header or not isinstance(header, str) or not isinstance(body, bytes | bytearray):
        return False
    key = api_key.get_secret_value()
    if not key:
        return False
    try:
        text = bytes(body).decode("utf-8")
        stamp = _now_ms() if now_ms is None else now_ms
        return bool(_sdk_verify(text, key, header, {"timestamp": stamp}))
    except Exception:  # a verifier must fail closed, whatever the SDK raises
        return False


def sign_body(body: bytes, api_key: str, timestamp_ms: int | None = None) -> str:
    """The header value Retell would send for ``body``; for tests and ``voicebook call``."""
    stamp = _now_ms() if timestamp_ms is None else timestamp_ms
    return str(_sdk_sign(body.decode("utf-8"), api_key, stamp))

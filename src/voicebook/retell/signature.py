"""Retell's ``X-Retell-Signature`` check, delegated to the official SDK.

The scheme (``v=<ms>,d=<hex HMAC-SHA256(api key, raw body + ms)>``, five minutes either way,
lowercase hex only) is Retell's to define; calling their implementation means a change on their side
arrives with an SDK upgrade instead of a silent mismatch with a hand-written copy. The SDK's
module-level ``verify`` reads the wall clock itself, so we call the same ``symmetric`` verifier it
wraps, passing ``now`` explicitly for deterministic tests.

``webhook_auth`` is loaded from the installed SDK by file, without importing the ``retell`` package:
the package's ``__init__`` builds the whole API client (about four seconds of pydantic models), which
every server worker and CLI start would otherwise pay for one HMAC check. The file's module-level
``cryptography`` imports are left out as it is loaded: only its asymmetric (RSA) helpers use them, when
called, and Retell signs function calls with the HMAC scheme; loading ``cryptography`` would put about
6 MB into every worker for nothing. A round trip through the loaded verifier checks at import that the
HMAC scheme works without them, so an SDK that starts to need them fails at start-up, not per request.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, Final, cast

from pydantic import SecretStr


def _load_sdk_webhook_auth() -> ModuleType:
    name = "retell.lib.webhook_auth"
    if name in sys.modules:
        return sys.modules[name]
    package = importlib.util.find_spec("retell")  # locates the package without executing it
    if package is None or not package.submodule_search_locations:
        raise ImportError("the retell-sdk package is not installed")
    path = Path(next(iter(package.submodule_search_locations))) / "lib" / "webhook_auth.py"
    tree = ast.parse(path.read_bytes(), str(path))
    tree.body = [node for node in tree.body if not _imports_cryptography(node)]  # see the docstring
    module = ModuleType("voicebook._retell_webhook_auth")
    module.__file__ = str(path)
    exec(compile(tree, str(path), "exec"), module.__dict__)
    _check_symmetric(module, path)
    return module


def _imports_cryptography(node: ast.stmt) -> bool:
    if isinstance(node, ast.ImportFrom):
        names = [node.module or ""] if node.level == 0 else []
    else:
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
    return any(name.partition(".")[0] == "cryptography" for name in names)


def _check_symmetric(module: ModuleType, path: Path) -> None:
    """Sign and verify one sample (and reject a changed one) with the HMAC scheme, or refuse to start."""
    try:
        scheme = module.symmetric
        header = scheme["sign"]("voicebook", "key", 0)
        works = scheme["verify"]("voicebook", "key", header, {"timestamp": 0}) is True
        works = works and scheme["verify"]("voicebook!", "key", header, {"timestamp": 0}) is False
    except Exception as exc:
        raise ImportError(f"{path}: the SDK's HMAC verifier failed its self-check: {exc!r}") from exc
    if not works:
        raise ImportError(f"{path}: the SDK's HMAC verifier failed its self-check")


webhook_auth = _load_sdk_webhook_auth()

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

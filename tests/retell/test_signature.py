import importlib.util
import json
import sys
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

import pytest
from pydantic import SecretStr

from voicebook.retell import signature
from voicebook.retell.signature import MAX_SKEW_MS, sign_body, verify_signature

DATA = Path(__file__).parent / "data"
KEY = "key_test_0000000000000000"
NOW = 1_795_532_531_570
BODY = b'{"name":"book_appointment","args":{"service":"Haarschnitt"}}'


def _secret(key: str = KEY) -> SecretStr:
    return SecretStr(key)


def test_reference_vector_from_readme() -> None:
    obj = json.loads((DATA / "webhook_call_started.json").read_text(encoding="utf-8"))
    body = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    header = "v=1795532531570,d=c765003f8741e95c5420028afe24f3d0d81d2997811d99b3344cfa130c973f9a"
    assert sign_body(body, KEY, 1795532531570) == header
    assert verify_signature(body, header, _secret(), now_ms=1795532531570)


def test_sdk_signed_body_passes() -> None:
    header = sign_body(BODY, KEY, NOW)
    assert header.startswith(f"v={NOW},d=")
    assert verify_signature(BODY, header, _secret(), now_ms=NOW)


def test_default_clock_accepts_fresh_signature() -> None:
    assert verify_signature(BODY, sign_body(BODY, KEY), _secret())


@pytest.mark.parametrize("skew", [-MAX_SKEW_MS, MAX_SKEW_MS, 0, 1000])
def test_within_five_minutes_passes(skew: int) -> None:
    assert verify_signature(BODY, sign_body(BODY, KEY, NOW + skew), _secret(), now_ms=NOW)


def test_tampered_body_fails() -> None:
    header = sign_body(BODY, KEY, NOW)
    assert not verify_signature(BODY.replace(b"Haar", b"Bart"), header, _secret(), now_ms=NOW)
    assert not verify_signature(BODY + b" ", header, _secret(), now_ms=NOW)


def test_other_key_fails() -> None:
    header = sign_body(BODY, "key_other", NOW)
    assert not verify_signature(BODY, header, _secret(), now_ms=NOW)


def test_empty_key_fails() -> None:
    header = sign_body(BODY, "", NOW)
    assert not verify_signature(BODY, header, _secret(""), now_ms=NOW)


@pytest.mark.parametrize("minutes", [-6, 6])
def test_stale_or_future_signature_fails(minutes: int) -> None:
    header = sign_body(BODY, KEY, NOW + minutes * 60_000)
    assert not verify_signature(BODY, header, _secret(), now_ms=NOW)


def test_just_outside_window_fails() -> None:
    header = sign_body(BODY, KEY, NOW - MAX_SKEW_MS - 1)
    assert not verify_signature(BODY, header, _secret(), now_ms=NOW)


def test_uppercase_hex_fails() -> None:
    version, digest = sign_body(BODY, KEY, NOW).split(",d=")
    assert not verify_signature(BODY, f"{version},d={digest.upper()}", _secret(), now_ms=NOW)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        "v=,d=",
        f"v={NOW}",
        f"d={'a' * 64}",
        f"v={NOW},d={'a' * 63}",
        f"v={NOW},d={'g' * 64}",
        f"v=abc,d={'a' * 64}",
        f"d={'a' * 64},v={NOW}",
        f"v={NOW}, d={'a' * 64}",
        f"v={NOW},d={'a' * 64}\n",
        f"v=-{NOW},d={'a' * 64}",
        "v=١٢٣,d=" + "a" * 64,
    ],
)
def test_missing_or_malformed_header_fails(header: str | None) -> None:
    assert not verify_signature(BODY, header, _secret(), now_ms=NOW)


def test_signature_with_trailing_whitespace_fails() -> None:
    header = sign_body(BODY, KEY, NOW)
    assert not verify_signature(BODY, header + " ", _secret(), now_ms=NOW)


def test_non_utf8_body_fails_without_raising() -> None:
    assert not verify_signature(b"\xff\xfe", sign_body(b"x", KEY, NOW), _secret(), now_ms=NOW)


def test_wrong_argument_types_never_raise() -> None:
    header = sign_body(BODY, KEY, NOW)
    assert not verify_signature("text", header, _secret(), now_ms=NOW)  # type: ignore[arg-type]
    assert not verify_signature(BODY, 42, _secret(), now_ms=NOW)  # type: ignore[arg-type]


# --- the SDK's verifier, loaded without its cryptography imports -------------------------------------


def _full_sdk_webhook_auth() -> ModuleType:
    """The SDK file executed as shipped (cryptography imports included), for comparison."""
    package = importlib.util.find_spec("retell")
    assert package is not None
    assert package.submodule_search_locations
    path = Path(next(iter(package.submodule_search_locations))) / "lib" / "webhook_auth.py"
    spec = importlib.util.spec_from_file_location("_full_retell_webhook_auth", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_loaded_verifier_is_the_sdks_own() -> None:
    """Same headers, same verdicts as the unmodified SDK module, for good, stale, tampered and odd input."""
    full = _full_sdk_webhook_auth().symmetric
    ours = signature.webhook_auth.symmetric
    for body in ("", "x", BODY.decode(), "ä" * 100):
        for stamp in (0, NOW, NOW + MAX_SKEW_MS + 1):
            assert ours["sign"](body, KEY, stamp) == full["sign"](body, KEY, stamp)
            header = full["sign"](body, KEY, stamp)
            for candidate in (header, header.upper(), header + "0", header.replace("d=", "d=0"), "v=1,d=ab"):
                for other_body in (body, body + " "):
                    opts = {"timestamp": NOW}
                    expected = full["verify"](other_body, KEY, candidate, opts)
                    assert ours["verify"](other_body, KEY, candidate, opts) == expected


def test_an_sdk_whose_hmac_needs_cryptography_stops_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If a future SDK's HMAC path used a name from the imports we leave out, we refuse to start."""
    sdk = tmp_path / "retell"
    (sdk / "lib").mkdir(parents=True)
    (sdk / "__init__.py").write_text("raise RuntimeError('the package must not be executed')\n")
    (sdk / "lib" / "webhook_auth.py").write_text(
        "import hmac, hashlib\n"
        "from cryptography.hazmat.primitives import constant_time\n"
        "FIVE_MINUTES = 300000\n"
        "def _sign(body, key, ts):\n"
        "    mac = hmac.new(key.encode(), (body + str(ts)).encode(), hashlib.sha256)\n"
        "    return f'v={ts},d=' + mac.hexdigest()\n"
        "def _verify(body, key, header, opts):\n"
        "    return constant_time.bytes_eq(header.encode(), _sign(body, key, opts['timestamp']).encode())\n"
        "symmetric = {'sign': _sign, 'verify': _verify}\n"
    )
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> ModuleSpec | None:
        if name == "retell":
            return _package_spec(sdk)
        return real_find_spec(name, package)

    monkeypatch.delitem(sys.modules, "retell.lib.webhook_auth", raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ImportError, match=r"self-check.*constant_time"):
        signature._load_sdk_webhook_auth()


def _package_spec(directory: Path) -> ModuleSpec:
    spec = ModuleSpec(directory.name, None, is_package=True)
    spec.submodule_search_locations = [str(directory)]
    return spec

"""Structured logging: one JSON line per decision, with personal data masked on the way out.

Why it looks like this:

- Logs are read by ``grep`` and by log shippers, so every line is one JSON object on stderr, and the
  guard phrases (``STALE BOOKING DETECTED``, ``CALL ID MISMATCH``, ``DUPLICATE BOOKING ID IN
  DATABASE``) appear verbatim in ``event``.
- structlog renders through the standard library's ``logging`` (``_Formatter``: structlog's processors run
  on every record, as ``ProcessorFormatter`` runs them), so uvicorn's, SQLAlchemy's and httpx's records
  come out as the same JSON lines and pass the same redaction.
- A line is cheap (about 25 µs): records are made without looking up the caller's frame, formatted
  without a copy, rendered by one kept JSON encoder (``_BoundLogger``, ``_Formatter``, ``_json_dumps``).
- Callers' phone numbers and e-mail addresses are personal data and API keys, bearer tokens and
  signatures are credentials: neither belongs in a log file. Redaction is the *last* step before
  rendering, so no processor, library or careless ``log.info(..., body=raw)`` can get around it.
- ``call_id``, ``attempt_id`` and ``company`` are bound once per request with
  ``structlog.contextvars.bind_contextvars`` and then appear on every event of that request.

The masking helpers (``mask_phone``, ``mask_email``, ``redact``) are public so that other outputs of
personal data (the admin page, CLI reports) mask the same way the logs do.
"""

from __future__ import annotations

import functools
import json as _json
import logging
import re
import sys
from collections.abc import Mapping
from typing import IO, Any, TextIO, overload

import structlog
from pydantic import SecretBytes, SecretStr
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = [
    "REDACTED",
    "configure_logging",
    "get_logger",
    "mask_email",
    "mask_phone",
    "redact",
    "redact_processor",
    "register_secret",
    "register_secrets",
]

REDACTED = "[redacted]"

# A field whose *name* says it holds a credential is dropped whole, whatever its value looks like:
# a key that happens not to match a pattern below must still never be written.
_SENSITIVE_KEY = re.compile(r"key|secret|token|signature|authorization|password|cookie", re.I)

# Credentials inside free text (an exception message, a logged header dict rendered as a string).
# Retell's X-Retell-Signature: ``v=<ms>,d=<64 hex>``; the ms timestamp would otherwise look like a phone.
_RETELL_SIGNATURE = re.compile(r"\bv=\d+\s*,\s*d=[0-9a-fA-F]{64}\b")
_BEARER = re.compile(r"\b(Bearer)\s+[A-Za-z0-9\-._~+/]+=*", re.I)
# Credentials recognised by their prefix: Cal.com keys ``cal_live_<hex>`` / ``cal_test_<hex>`` (older:
# ``cal_<hex>``), Retell keys ``key_<...>``, webhook secrets ``whsec_<...>`` (Cal.com, Svix, Stripe),
# ``sk_``/``rk_`` secret keys. ``call_...`` ids do not match: the prefix is ``cal_``, not ``call_``; nor do
# names like ``idempotency_key_x`` (no word boundary before ``key_``).
_API_KEY = re.compile(r"\b(?:whsec|sk|rk|cal_live|cal_test|cal|key)_[A-Za-z0-9][A-Za-z0-9_\-]{5,}")
_API_KEY_PREFIXES = ("whsec_", "sk_", "rk_", "cal_", "key_")  # one of them is in every match of _API_KEY
# The configured secret values themselves (``register_secrets``): a key without a known prefix, or one
# pasted where no pattern expects it, is still never written.
_MIN_SECRET_CHARS = 6
_configured_secrets: set[str] = set()
_CONFIGURED: list[re.Pattern[str]] = []
# A bare 64-hex run in text is an HMAC-SHA256 (Cal.com's X-Cal-Signature-256, a Retell ``d=``).
_HEX_DIGEST = re.compile(r"\b[0-9a-fA-F]{64}\b")

# Any letters (``jörg@müller.de``), and hosts without a dot (``anna@localhost``): an address that a
# stricter pattern misses is written in clear, one masked too eagerly costs nothing.
# The local part is bounded (RFC 5321: 64 characters) so a long run without "@" is scanned in linear time.
_EMAIL = re.compile(r"([\w%+\-])[\w.%+\-]{0,63}@([\w\-]+(?:\.[\w\-]+)*)")

# Phone numbers in free text. One scan with two alternatives: ISO-8601 dates/datetimes are matched
# first and kept as they are, so "2026-12-01T15:00:00+01:00" (eight digits and dashes) is never taken
# for a phone number; everything else that is a run of 7..15 digits, optionally after "+" (or its
# URL-encoding "%2B") or "(", with single spaces, dashes, slashes or parentheses between the digits,
# and not glued to a word, is a phone number.
# Dots separate groups too (``0170.9996001``, ``+49.170.9996001``); a dotted run whose first group has a
# single digit is a decimal (``3.14159265``) and is kept, as are German dates and IPv4 addresses (both
# matched as "date" alternatives). The look-arounds keep digit runs inside identifiers (booking uids,
# "call_7f3c...", UUIDs, hex digests), decimals, versions and URL path segments intact.
_PHONE_OR_DATE = re.compile(
    r"""
    (?P<date>
        (?<![\w.])
        \d{4}-\d{2}-\d{2}
        (?:[T\ ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?)?
        (?:Z|[+-]\d{2}(?::?\d{2})?)?
        (?!\w)
    |
        (?<![\w.])\d{1,2}\.\d{1,2}\.\d{4}(?!\w|\.\d)           # 01.12.2026
    |
        (?<![\w.+(])(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)   # an IPv4 address; no leading zero, so
        (?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}     # "030.123.45.67" stays a phone number
        (?!\w|\.\d)
    )
    |
    (?P<phone>
        (?<![\w+\-./%])
        (?:\+|%2[Bb]|\()?
        \d
        (?:(?:[\ \-/.]|\)\ ?|\ ?\()?\d)+
        (?![\w+]|[.,:/\-]\d)
    )
    """,
    re.X,
)
_MIN_PHONE_DIGITS = 7
_MAX_PHONE_DIGITS = 15  # E.164's limit; longer runs are ids or counters, not phone numbers
_SAFE_KEYS = frozenset({"timestamp", "level", "logger"})


def mask_phone(phone: str) -> str:
    """Mask one phone number: keep the first 6 and the last 2 characters, a ``*`` for each one between.

    ``+49301234567`` → ``+49301****67``: the country and area code stay (useful when a whole region
    fails), the last two digits stay (enough for an operator to match a caller who reads them out),
    the subscriber number goes. The length is kept so that masked numbers still line up in a table.
    Short numbers give up prefix characters first so that at least four characters are always masked.
    """
    n = len(phone)
    tail = 2 if n >= 5 else 0
    head = min(6, max(n - tail - 4, 0))
    return phone[:head] + "*" * (n - head - tail) + phone[n - tail :]


def mask_email(email: str) -> str:
    """Mask an e-mail address as the first character of the local part, ``***@`` and the domain.

    ``hans@example.com`` → ``h***@example.com``: the domain tells an operator which company's
    per-call fallback address (``booking+{call_id}@<company domain>``) or which provider is involved;
    the mailbox is the caller's. Something without an ``@`` is masked whole rather than guessed at.
    """
    local, at, domain = email.rpartition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"


def _url_decoded(text: str) -> str:
    from urllib.parse import unquote

    return unquote(text)


def _mask_phone_match(match: re.Match[str]) -> str:
    text = match.group(0)
    if match.group("date") is not None:
        return text
    digits = sum(ch.isdigit() for ch in text)
    if digits < _MIN_PHONE_DIGITS:
        return text
    if "." in text and len(text.lstrip("+(").split(".", 1)[0]) < 2:
        return text  # a decimal number, not a phone number written with dots
    if digits > _MAX_PHONE_DIGITS:
        # Several numbers run together ("0301234567 0307654321"): mask every digit rather than guess
        # where one ends. A single long run without separators is an id, not a phone.
        return re.sub(r"\d", "*", text) if not text.isdigit() else text
    return mask_phone(text)


# 1024 entries: the repeats worth memoising are one request's own values, a few per request in flight.
# Most other values (ids, uids, times) never come back, so a larger memo only holds them longer: at
# 4096 it kept about 1 MB per worker with the same hits under load (docs/BENCHMARKS.md, run 4).
@functools.lru_cache(maxsize=1024)
def _redact_text(text: str) -> str:
    """Mask credentials, then e-mails, then phone numbers inside free text.

    Order matters: credentials first (a signature's ms timestamp or a key's digits must not be half
    masked as a phone and the rest left readable), e-mails before phones (``4930123@x.de``).

    A pure function of the text, so it is memoised: a request's lines repeat the same values (call id,
    attempt id, company, function), which are then redacted once. Each pattern only runs when the text
    holds what every one of its matches must contain (``v=``, "bearer", ``cal_``/``key_``, 64
    characters, seven digits for a phone number to be masked, and nothing but digits if the text is a
    single word: ``_may_hold_a_phone_number``): the same result, without scanning text that cannot match
    (a new call id, attempt id or booking uid on every booking).
    """
    if not text:
        return text
    if "%40" in text or "%2B" in text or "%2b" in text:
        text = _url_decoded(text)  # an e-mail or phone in a query string must not slip past as %40
    for pattern in _CONFIGURED:
        text = pattern.sub(REDACTED, text)
    if "v=" in text:
        text = _RETELL_SIGNATURE.sub(REDACTED, text)
    if "bearer" in text.lower():
        text = _BEARER.sub(rf"\1 {REDACTED}", text)
    if "_" in text and any(prefix in text for prefix in _API_KEY_PREFIXES):
        text = _API_KEY.sub(REDACTED, text)
    if len(text) >= 64:
        text = _HEX_DIGEST.sub(REDACTED, text)
    if "@" in text:
        text = _EMAIL.sub(r"\1***@\2", text)
    if _may_hold_a_phone_number(text):
        text = _PHONE_OR_DATE.sub(_mask_phone_match, text)
    return text


def _may_hold_a_phone_number(text: str) -> bool:
    """Whether ``_PHONE_OR_DATE`` could mask anything in ``text``; ``False`` only where it cannot.

    A match needs seven digits to be masked. And text of word characters only (an id, a uid, a hex
    attempt id: ``str.isalnum`` or ``_`` is what ``re`` takes for ``\\w``) can only match as a whole,
    and only if it is all decimal digits (``\\d``, ``str.isdecimal``): the look-arounds forbid a word
    character before and after a match, every separator and prefix is a non-word character and every
    date alternative needs a ``-`` or a ``.``. Telling that costs two C loops instead of a scan.
    """
    if text.replace("_", "").isalnum():
        return len(text) >= _MIN_PHONE_DIGITS and text.isdecimal()
    return sum(map(str.isdigit, text)) >= _MIN_PHONE_DIGITS


@overload
def redact(obj: str) -> str: ...
@overload
def redact(obj: Mapping[Any, Any]) -> dict[Any, Any]: ...
@overload
def redact(obj: object) -> object: ...
def redact(obj: object) -> object:
    """Return a copy of ``obj`` that is safe to log or show: masked text, dropped credentials.

    Recurses into mappings and sequences. A mapping entry whose key names a credential (``api_key``,
    ``X-Retell-Signature``, ``Authorization``, ``password``…) is replaced whole, as is any pydantic
    ``SecretStr``. Numbers, booleans and ``None`` pass unchanged (an ``event_type_id`` is not a phone
    number); any other object is logged by its ``str`` and that string is redacted, because renderers
    would otherwise print its ``repr`` unchecked.
    """
    if obj.__class__ is str:  # the common case first; the same branch as ``isinstance(obj, str)`` below
        return _redact_text(obj)
    if obj is None or isinstance(obj, bool | int | float):
        return obj
    if isinstance(obj, str):
        return _redact_text(obj)
    if isinstance(obj, SecretStr | SecretBytes):
        return REDACTED
    if isinstance(obj, Mapping):
        return {key: REDACTED if _is_sensitive_key(key) else redact(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [redact(item) for item in obj]
    if isinstance(obj, bytes | bytearray):
        return _redact_text(bytes(obj).decode("utf-8", "replace"))
    return _redact_text(str(obj))


def register_secrets(values: list[str]) -> None:
    """Make ``redact`` replace these exact values wherever they appear (the configured keys and tokens).

    Called by ``create_app`` with every secret setting; values accumulate for the life of the process
    (several apps in one test process each add theirs). Values shorter than six characters are skipped:
    replacing every ``abc`` in every line would make the logs useless and hide nothing worth hiding.
    """
    fresh = {v for v in values if len(v) >= _MIN_SECRET_CHARS} - _configured_secrets
    if not fresh:
        return
    _configured_secrets.update(fresh)
    ordered = sorted(_configured_secrets, key=len, reverse=True)  # the longest first: no half-masked key
    _CONFIGURED[:] = [re.compile("|".join(re.escape(v) for v in ordered))]
    _redact_text.cache_clear()  # a line memoised before this secret was known must not come back


def register_secret(value: str | None) -> None:
    """One secret opened at run time (a company's own key, webhook secret, OAuth token): never logged."""
    if value:
        register_secrets([value])


def _is_sensitive_key(key: object) -> bool:
    return isinstance(key, str) and _sensitive_name(key)


# Field names come from code (the keywords of log calls, the keys of logged header dicts), so a few
# hundred cover them all and every line asks about each of its fields: one dictionary lookup instead of
# a regex scan per field. The bound only matters for a logged mapping with ever new keys.
@functools.lru_cache(maxsize=512)
def _sensitive_name(key: str) -> bool:
    return _SENSITIVE_KEY.search(key) is not None


def redact_processor(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: redact every value of the event, ``event`` itself included."""
    return {
        key: value if key in _SAFE_KEYS else REDACTED if _is_sensitive_key(key) else redact(value)
        for key, value in event_dict.items()
    }


# ``json.dumps(obj, **options)`` is ``JSONEncoder(**options).encode(obj)``: with any non-default option it
# builds a new encoder for every line. The renderer passes the same options every time (``ensure_ascii``
# and structlog's ``default``), so the encoder is built once per set of options: the same output.
@functools.lru_cache(maxsize=8)
def _json_encoder(options: tuple[tuple[str, Any], ...]) -> _json.JSONEncoder:
    return _json.JSONEncoder(**dict(options))


def _json_dumps(obj: Any, **options: Any) -> str:
    """``JSONRenderer``'s serializer: ``json.dumps`` with the encoder kept."""
    return _json_encoder(tuple(options.items())).encode(obj)


# The levels of the methods structlog's stdlib ``BoundLogger`` forwards under their own name. ``exception``
# is not among them: the standard library adds the current exception to that record (``exc_info``).
_LEVELS: Mapping[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


class _BoundLogger(structlog.stdlib.BoundLogger):
    """structlog's stdlib logger, handing its events to ``logging`` without asking where they came from.

    ``Logger.info()`` and friends look up the calling frame for every record (``findCaller``; structlog
    installs one that walks the stack past its own frames), only to fill ``pathname``, ``lineno`` and
    ``funcName``, which no output of ours shows: the JSON and console lines carry the event dict, never
    the record's source position. So the record is made and handled here the way ``Logger._log`` makes
    it when the position is unknown (``"(unknown file)"``, 0, ``"(unknown function)"``), and passes the
    same level check, filters and handlers. Anything else (``exception``, a processor chain that ends
    in something other than one message and ``extra``) takes the standard library's own path.
    """

    def _proxy_to_logger(
        self, method_name: str, event: str | None = None, *event_args: str, **event_kw: Any
    ) -> Any:
        level = _LEVELS.get(method_name)
        logger = self._logger
        if level is None or not isinstance(logger, logging.Logger):
            return super()._proxy_to_logger(method_name, event, *event_args, **event_kw)
        if event_args:
            event_kw["positional_args"] = event_args
        try:
            args, kw = self._process_event(method_name, event, event_kw)
        except structlog.DropEvent:
            return None
        if len(args) != 1 or not kw.keys() <= {"extra"}:
            return getattr(logger, method_name)(*args, **kw)
        if logger.isEnabledFor(level):
            extra = kw.get("extra")
            unknown = ("(unknown file)", 0)
            record = logger.makeRecord(
                logger.name, level, *unknown, args[0], (), None, "(unknown function)", extra
            )
            logger.handle(record)
        return None


_MISSING = object()


class _Formatter(logging.Formatter):
    """``structlog.stdlib.ProcessorFormatter``'s work, without its copies: the line is the event dict,
    run through ``processors`` (for a standard library record, through ``foreign_pre_chain`` first).

    ``ProcessorFormatter`` copies every record (a second ``LogRecord``) so that it can overwrite the
    copy's message and then hand it to ``logging.Formatter.format``, which for our ``"%(message)s"``
    returns that message unchanged. This formatter returns the rendered line itself and changes nothing
    on the record, so it needs no copy, and other handlers (pytest's ``caplog``) see the record as it
    was. The event dict is the one ``ProcessorFormatter`` builds (``_record`` and ``_from_structlog``
    included, which ``remove_processors_meta`` takes out again), so the same processors give the same
    line; ``processors`` must end in a renderer that returns ``str``.
    """

    def __init__(self, foreign_pre_chain: list[Processor], processors: list[Processor]) -> None:
        super().__init__()
        self.foreign_pre_chain = tuple(foreign_pre_chain)
        self.processors = tuple(processors)

    def format(self, record: logging.LogRecord) -> str:
        fields = record.__dict__
        logger = fields.get("_logger", _MISSING)
        method_name = fields.get("_name", _MISSING)
        ed: Any
        if logger is not _MISSING and method_name is not _MISSING:  # attached by wrap_for_formatter
            ed = dict(record.msg)  # type: ignore[arg-type]  # an event dict, from structlog
            ed["_record"] = record
            ed["_from_structlog"] = True
        else:
            logger, method_name = None, record.levelname.lower()
            ed = {"event": record.getMessage(), "_record": record, "_from_structlog": False}
            if record.exc_info:
                ed["exc_info"] = record.exc_info
            if record.stack_info:
                ed["stack_info"] = record.stack_info
            for pre in self.foreign_pre_chain:
                ed = pre(logger, method_name, ed)
        for processor in self.processors:
            ed = processor(logger, method_name, ed)
        if not isinstance(ed, str):
            raise TypeError(f"the last log processor must render a str, not {type(ed).__name__}")
        return ed


class _StderrHandler(logging.StreamHandler[TextIO]):
    """A handler that looks ``sys.stderr`` up at every write, not once at configuration time.

    pytest's ``capsys`` and anything else that swaps ``sys.stderr`` would otherwise be bypassed by a
    handler holding on to the original stream.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr  # handle() holds the handler's lock around emit()
        super().emit(record)


_HANDLER_MARK = "_voicebook_handler"
# uvicorn installs its own handlers unless run with ``log_config=None``; these loggers are handed to
# the root logger so that their lines are JSON too.
_HANDED_OVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


def _chains(json: bool) -> tuple[list[Processor], list[Processor]]:
    """The processors every event passes: ``shared`` (structlog's and the standard library's events
    alike, before rendering) and the formatter's, which redact and render."""
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        timestamper,
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer(_json_dumps, ensure_ascii=False)
        if json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    processors: list[Processor] = [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
        # The stack of ``stack_info=True`` ends where it did with ProcessorFormatter, not in _Formatter.
        structlog.processors.StackInfoRenderer(additional_ignores=[__name__]),
        structlog.processors.format_exc_info,
        structlog.processors.UnicodeDecoder(),
        redact_processor,  # last before the renderer: nothing unredacted gets past it
        renderer,
    ]
    return shared, processors


def configure_logging(level: str = "INFO", json: bool = True, stream: IO[str] | None = None) -> None:
    """Route structlog and the standard library's ``logging`` into one redacted output on stderr.

    Safe to call more than once (tests, ``create_app`` after the CLI): the handler installed by an
    earlier call is replaced, never duplicated. ``json=False`` renders for a human at a terminal;
    ``stream`` (default: whatever ``sys.stderr`` is at the time of each write) lets tests capture it.
    """
    shared, processors = _chains(json)
    formatter = _Formatter(foreign_pre_chain=shared, processors=processors)
    handler: logging.Handler = _StderrHandler() if stream is None else logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_MARK, True)

    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in _HANDED_OVER_LOGGERS:
        logger = logging.getLogger(name)
        if not logger.handlers and not logger.propagate:
            # Switched off on purpose (``uvicorn.run(access_log=False)`` in ``voicebook serve`` does this
            # to ``uvicorn.access``): handing it over would turn the access log back on.
            continue
        logger.handlers.clear()
        logger.propagate = True
    # httpx logs every request URL at INFO; our Cal.com client logs its own low-cardinality events.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=_BoundLogger,
        # Not cached: a module-level ``log = get_logger(...)`` used before configure_logging() ran
        # (imports, tests) must still pick up the configuration that is in force when it logs.
        cache_logger_on_first_use=False,
    )


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    """Return a structlog logger; ``name`` (a dotted module name) becomes the ``logger`` field."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger

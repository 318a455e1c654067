"""Whatever JSON a model produces, parsing either succeeds or raises ArgumentError."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from voicebook.retell.arguments import FUNCTION_NAMES, parse_arguments
from voicebook.retell.errors import ARGUMENT_CODES, ArgumentError
from voicebook.retell.fields import resolve_start

KNOWN_KEYS = [
    "service", "date", "time", "start", "new_start", "name", "phone", "email", "notes",
    "slot_start", "attendee_name", "attendee_email", "attendee_phone", "call_id", "timezone",
]  # fmt: skip
ZONES = [ZoneInfo(z) for z in ("Europe/Berlin", "America/New_York", "UTC", "Pacific/Chatham")]

json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
)
plausible = st.sampled_from(
    ["", "null", "9", "25:00", "9 Uhr", "3 PM", "2026-03-29T02:30", "2026-10-25 02:30:59",
     "0001-01-01T00:00+14:00", "9999-12-31T23:59-14:00", "9999-12-31T23:59", "0001-01-01T00:30",
     "2026-02-30T10:00", "+49 30 1234567", "030 1234567", "a@b.c", "x@ex\u00e4mple.de", "30.02.2026",
     "morgen", "2026-03-10T09:00:00.123456789Z", "\u0663\u0660:\u0660\u0660", "x" * 600]
)  # fmt: skip
json_values = st.recursive(
    json_scalars | plausible,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
arg_objects = st.dictionaries(st.sampled_from(KNOWN_KEYS) | st.text(max_size=8), json_values, max_size=8)


@settings(max_examples=400, deadline=None)
@given(
    function=st.sampled_from(sorted(FUNCTION_NAMES)) | st.text(max_size=10),
    args=arg_objects,
    caller=st.none() | st.text(max_size=20) | st.just("+491701234567"),
    zone=st.sampled_from(ZONES),
    region=st.sampled_from(["DE", "US", "AT", "ZZ", "", "de"]),
    now=st.datetimes(timezones=st.just(UTC)),
)
def test_parse_only_raises_argument_error(
    function: str,
    args: dict[str, object],
    caller: str | None,
    zone: ZoneInfo,
    region: str,
    now: datetime,
) -> None:
    try:
        parse_arguments(function, args, tz=zone, region=region, now=now, caller_phone=caller)
    except ArgumentError as error:
        code: str = error.code
    else:
        return
    assert code in ARGUMENT_CODES


@settings(max_examples=300, deadline=None)
@given(
    value=st.text() | st.datetimes().map(lambda d: d.isoformat(timespec="minutes")),
    zone=st.sampled_from(ZONES),
)
def test_resolve_start_only_raises_argument_error(value: str, zone: ZoneInfo) -> None:
    try:
        instant = resolve_start(value, zone)
    except ArgumentError:
        return
    assert instant.tzinfo is UTC


@settings(max_examples=400, deadline=None)
@given(
    function=st.sampled_from(sorted(FUNCTION_NAMES)),
    start=plausible | st.datetimes().map(lambda d: d.isoformat(timespec="minutes")),
    new_start=plausible | st.datetimes().map(lambda d: d.isoformat(timespec="minutes")),
    day=plausible | st.dates().map(str),
    zone=st.sampled_from(ZONES),
    now=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
)
def test_parsed_times_survive_any_later_arithmetic(
    function: str, start: str, new_start: str, day: str, zone: ZoneInfo, now: datetime
) -> None:
    """Issue 13, case 8: whatever the model sends, a parsed time plus or minus a few days, or in any zone,
    is representable — so no duration, lookup window or offset added later can overflow."""
    args = {"service": "x", "name": "Anna", "start": start, "new_start": new_start, "date": day}
    try:
        command = parse_arguments(function, args, tz=zone, region="DE", now=now, caller_phone="+491701234567")
    except ArgumentError:
        return
    instants = [v for v in vars_of(command) if isinstance(v, datetime)]
    days = [v for v in vars_of(command) if isinstance(v, date) and not isinstance(v, datetime)]
    for instant in instants:
        for shifted in (instant - timedelta(days=2), instant + timedelta(days=2)):
            for other in ZONES:
                shifted.astimezone(other)
    for d in days:
        datetime.combine(d + timedelta(days=2), time(23, 59), tzinfo=zone).astimezone(UTC)
        datetime.combine(d - timedelta(days=2), time(0), tzinfo=zone).astimezone(UTC)


def vars_of(command: object) -> list[object]:
    return [getattr(command, name) for name in command.__slots__]  # type: ignore[attr-defined]


def _phone_e164_unmemoised(value: str, region: str) -> str | None:
    """``fields.phone_e164`` as it was before its memo and its hand-over to the caller ID's memo."""
    import phonenumbers

    try:
        number = phonenumbers.parse(value.strip(), region.upper())
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


phone_texts = st.builds(
    "".join,
    st.lists(
        st.sampled_from([*"+0123456789 ()-./x#*", "ext. ", "%2B", "\u0663", "\u00a0", "\t"]),
        max_size=40,
    ),
)
known_numbers = st.sampled_from(
    ["+4930123456", "+49 30 1234567", " +49 (0)30 1234567 ", "+1 212 555 0123", "+44 20 7946 0958",
     "030 1234567", "0170 9996001", "(212) 555-0123", "+49 30 1234567 ext. 89", "+43 1 234567890",
     "+49 30 1234567" + " " * 20, "+" + "4" * 16, "+49-30-1234567-0-0-0-0-0-0-0-0-0-0"]
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(value=known_numbers | phone_texts, region=st.sampled_from(["DE", "US", "AT", "GB", "ZZ", "de"]))
def test_phone_e164_answers_what_a_fresh_parse_answers(value: str, region: str) -> None:
    """Memoised, and reading a ``+`` number through ``tenancy.e164_or_none``, ``phone_e164`` still gives
    exactly what parsing the text there and then gives, for every region, and twice in a row."""
    from voicebook.retell.fields import phone_e164

    expected = _phone_e164_unmemoised(value, region)
    for _ in range(2):
        code = None
        try:
            got: str | None = phone_e164(value, "phone", region)
        except ArgumentError as error:
            code, got = error.code, None
        assert got == expected
        assert code == (None if expected else "bad_phone")


@settings(max_examples=400, deadline=None)
@given(value=st.text(max_size=40) | st.sampled_from(["Anna\x00 Müller", "a\u2028b", "x\u200b", "\x7f\x85 z"]))
def test_text_drops_exactly_the_control_characters(value: str) -> None:
    """``text`` skips its per-character filter for printable strings; the result must be the filter's."""
    import unicodedata

    from voicebook.retell.fields import text

    visible = "".join(ch for ch in value if ch.isspace() or unicodedata.category(ch) != "Cc")
    expected = " ".join(visible.split())
    code = got = None
    try:
        got = text(value, "notes", max_len=30)
    except ArgumentError as error:
        code = error.code
    if not expected:
        assert code == "missing"
    elif len(expected) > 30:
        assert code == "too_long"
    else:
        assert got == expected

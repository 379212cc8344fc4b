"""Instants on the wire: RFC 3339 with an explicit offset in, UTC with `Z` out.

Every instant the operator handles is timezone-aware UTC, and this module is the one
that writes and reads them as text: the Job's scheduled-for annotation and environment,
the trigger's status, the ledger's run keys and the command line's output all say the
same instant the same way.

`parse_instant` is strict (a date-time without an offset is an error, not a guess at a
zone); `parse_api_time` reads what the API server wrote and gives None for what it cannot
read. `format_instant` writes whole seconds as `2026-11-27T01:30:00Z`, and a fraction only
when there is one, without trailing zeros (`...:00.25Z`), as Go's RFC3339Nano does.
`format_micro_time` writes the fixed six-digit fraction of a Kubernetes MicroTime.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, PlainSerializer, WithJsonSchema

# The grammar of RFC 3339 section 5.6 (`T` and `Z` in either case). The CRD schema
# uses the same pattern, so the API server rejects at admission what this rejects.
RFC3339_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
_RFC3339 = re.compile(
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})[Tt]"
    r"(?P<time>[0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.(?P<fraction>[0-9]+))?"
    r"(?P<offset>[Zz]|[+-][0-9]{2}:[0-9]{2})?"
)


def parse_instant(text: str) -> datetime:
    """Read an RFC 3339 date-time with an offset; return it in UTC.

    Raises ValueError with a message that says what is wrong, without a field name:
    callers prefix the field they read it from.
    """
    match = _RFC3339.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"'{text}' is not an RFC 3339 date-time such as 2026-12-01T09:00:00Z")
    if match["offset"] is None:
        raise ValueError(f"'{text}' has no UTC offset; add Z for UTC or an offset such as +01:00")
    fraction = (match["fraction"] or "")[:6].ljust(6, "0")
    try:
        local = datetime.fromisoformat(f"{match['date']}T{match['time']}.{fraction}")
        offset = _offset(match["offset"])
    except ValueError as error:
        raise ValueError(f"'{text}' is not a valid date-time: {error}") from None
    return local.replace(tzinfo=offset).astimezone(UTC)


def parse_api_time(value: Any) -> datetime | None:
    """An API timestamp (RFC 3339; a datetime as the Python client returns) as aware UTC.

    None when absent or unreadable: a Job's fields are evidence, never a reason to fail.
    """
    if isinstance(value, datetime):
        return value
    if not value:
        return None
    try:
        return parse_instant(str(value))
    except ValueError:
        return None


def format_instant(instant: datetime) -> str:
    """Write an aware instant as RFC 3339 in UTC, e.g. `2026-11-27T01:30:00Z`.

    A fraction of a second is written only when there is one, without trailing zeros.
    """
    utc = _utc(instant, "format_instant")
    text = utc.replace(tzinfo=None, microsecond=0).isoformat()
    if utc.microsecond:
        text += f".{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


def format_micro_time(instant: datetime) -> str:
    """Write an aware instant as a Kubernetes MicroTime: `2026-11-27T01:30:00.000000Z`."""
    return (
        _utc(instant, "format_micro_time").replace(tzinfo=None).isoformat(timespec="microseconds")
        + "Z"
    )


def _utc(instant: datetime, what: str) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{what} needs a timezone-aware datetime, got {instant!r}")
    return instant.astimezone(UTC)


def _offset(text: str) -> timezone:
    if text in ("Z", "z"):
        return UTC
    sign = -1 if text[0] == "-" else 1
    hours, minutes = int(text[1:3]), int(text[4:6])
    if hours > 23 or minutes > 59:
        raise ValueError(f"offset {text} is out of range")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _to_utc(instant: datetime) -> datetime:
    return instant.astimezone(UTC)


Instant = Annotated[
    AwareDatetime,
    AfterValidator(_to_utc),
    PlainSerializer(format_instant, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
"""A timezone-aware instant, held in UTC and written as RFC 3339 with `Z`."""

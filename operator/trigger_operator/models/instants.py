"""Instants on the wire: RFC 3339 with an explicit offset in, UTC with `Z` out.

Every instant the operator handles is timezone-aware UTC. `parse_instant` is strict
(a date-time without an offset is an error, not a guess at a zone), and
`format_instant` writes whole seconds as `2026-11-27T01:30:00Z`, with a fraction only
when there is one.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated

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


def format_instant(instant: datetime) -> str:
    """Write an aware instant as RFC 3339 in UTC, e.g. `2026-11-27T01:30:00Z`."""
    if instant.tzinfo is None:
        raise ValueError("format_instant needs a timezone-aware datetime")
    return instant.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


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

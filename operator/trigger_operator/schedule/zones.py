"""Time zones: IANA names to `ZoneInfo`, and a zone's history as constant-offset segments.

The fire-time code walks a zone as a sequence of `Segment`s, stretches of UTC during which
the offset does not change, each entered by the `Transition` that starts it. A forward
transition (offset grows) opens a gap of wall-clock times that never happen; a backward
one opens a fold of wall-clock times that happen twice. Reading a wall clock inside a
segment is then plain arithmetic, and the daylight-saving rules only act at segment starts.

`zoneinfo` has no public list of transitions, so they are found by probing each UTC year
hour by hour and bisecting each change to the second, and cached per (zone, year).
An offset that changed and changed back within one hour would go unseen; no zone in the
tz database does that.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from importlib import resources
from itertools import count
from zoneinfo import ZoneInfo

from trigger_operator.schedule.errors import InvalidTimeZone

_PROBE_STEP = 3600
# datetime ends in 9999; stop a year early so that probing the following year still fits.
LAST_INSTANT = datetime(9998, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Transition:
    """The instant a zone's offset changes."""

    at: datetime
    """The first UTC instant with the new offset."""
    before: timedelta
    after: timedelta

    @property
    def is_gap(self) -> bool:
        """Clocks jump forward: wall-clock times from `at + before` to `at + after` never happen."""
        return self.after > self.before

    @property
    def is_fold(self) -> bool:
        """Clocks fall back: wall-clock times from `at + after` to `at + before` happen twice."""
        return self.after < self.before


@dataclass(frozen=True)
class Segment:
    """A stretch of UTC, [start, end), during which the zone's offset is constant."""

    start: datetime
    end: datetime
    offset: timedelta
    entered_by: Transition | None
    """The transition at `start`, when the segment starts with one."""


def load_zone(name: str) -> ZoneInfo:
    """The zone named `name`; raise InvalidTimeZone unless it is an IANA time zone name."""
    if name not in _iana_names():
        raise InvalidTimeZone(f"unknown time zone '{name}'; use an IANA name such as Europe/Berlin")
    return ZoneInfo(name)


@lru_cache(maxsize=1)
def _iana_names() -> frozenset[str]:
    # The list shipped with tzdata rather than whatever files the host has: the same name
    # is then valid on every machine, and host files such as `localtime` are not names.
    return frozenset(resources.files("tzdata").joinpath("zones").read_text().split())


def offset_at(zone: ZoneInfo, instant: datetime) -> timedelta:
    """The zone's UTC offset at an aware instant."""
    offset = instant.astimezone(zone).utcoffset()
    assert offset is not None  # a ZoneInfo always has one
    return offset


@lru_cache(maxsize=4096)
def transitions_in_year(zone: ZoneInfo, year: int) -> tuple[Transition, ...]:
    """The zone's offset changes during the UTC year `year`, in order."""
    start = int(datetime(year, 1, 1, tzinfo=UTC).timestamp())
    end = int(datetime(year + 1, 1, 1, tzinfo=UTC).timestamp())
    probes = [start - 1, *range(start + _PROBE_STEP, end, _PROBE_STEP), end - 1]
    found: list[Transition] = []
    previous, previous_offset = probes[0], _offset_at_second(zone, probes[0])
    for probe in probes[1:]:
        offset = _offset_at_second(zone, probe)
        if offset != previous_offset:
            at = _bisect_change(zone, previous, probe, offset)
            found.append(Transition(at=_instant(at), before=previous_offset, after=offset))
        previous, previous_offset = probe, offset
    return tuple(found)


def segments(zone: ZoneInfo, since: datetime, until: datetime) -> Iterator[Segment]:
    """The segments that cover [since, until), from the one containing `since`.

    A segment never spans a UTC new year, so a zone without transitions yields one
    segment per year. Nothing is yielded from LAST_INSTANT on.
    """
    until = min(until, LAST_INSTANT)
    entered: Transition | None = None
    for year in range(max(since.year - 1, 1), since.year + 1):
        for earlier in transitions_in_year(zone, year):
            if earlier.at <= since:
                entered = earlier
    start = entered.at if entered is not None else since
    if since >= until:
        return
    for at, transition in _cuts(zone, since.year):
        if at <= since:
            continue
        yield Segment(start=start, end=at, offset=offset_at(zone, start), entered_by=entered)
        start, entered = at, transition
        if start >= until:
            return


def _cuts(zone: ZoneInfo, first_year: int) -> Iterator[tuple[datetime, Transition | None]]:
    for year in count(first_year):
        new_year = datetime(year + 1, 1, 1, tzinfo=UTC)
        yield from ((t.at, t) for t in transitions_in_year(zone, year))
        following = transitions_in_year(zone, year + 1)
        if not following or following[0].at != new_year:
            yield new_year, None


def _bisect_change(zone: ZoneInfo, low: int, high: int, new_offset: timedelta) -> int:
    # Invariant: the offset at `low` is the old one and at `high` the new one.
    while high - low > 1:
        middle = (low + high) // 2
        if _offset_at_second(zone, middle) == new_offset:
            high = middle
        else:
            low = middle
    return high


def _offset_at_second(zone: ZoneInfo, second: int) -> timedelta:
    offset = datetime.fromtimestamp(second, zone).utcoffset()
    assert offset is not None  # a ZoneInfo always has one
    return offset


def _instant(second: int) -> datetime:
    return datetime.fromtimestamp(second, UTC)

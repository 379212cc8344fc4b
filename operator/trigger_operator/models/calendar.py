"""`spec` of a ScheduleCalendar, and the exclusions a trigger lists inline (`spec.exclude`).

A calendar holds times that must not run: whole dates, yearly dates, date ranges and
recurring windows, all read on the calendar's own `timeZone`. The schema checks shapes
(a date is YYYY-MM-DD, a yearly date MM-DD, a range's end is not before its start, a
duration is like `2h30m`); whether a date exists, a window's cron grammar and the zone
are checked by the schedule package, and reported on the triggers that use the calendar.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field

from trigger_operator.models.base import ResourceModel

DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
YEARLY_PATTERN = r"^[0-9]{2}-[0-9]{2}$"
DURATION_PATTERN = r"^([0-9]+h)?([0-9]+m)?([0-9]+s)?$"
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
ENTRIES_MAX = 512

Day = Annotated[str, Field(pattern=DATE_PATTERN, max_length=10)]
YearlyDay = Annotated[str, Field(pattern=YEARLY_PATTERN, max_length=5)]


class DateRange(ResourceModel):
    """Every date from `start` to `end`, both included."""

    model_config = ConfigDict(
        frozen=True,
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self.start <= self.end", "message": "end is before start"}
            ]
        },
    )

    start: Day
    """The first excluded date, YYYY-MM-DD."""

    end: Day
    """The last excluded date, YYYY-MM-DD; not before start."""


class Window(ResourceModel):
    """A recurring window: it opens at each time of `schedule` and lasts `duration`."""

    model_config = ConfigDict(frozen=True)

    schedule: str = Field(min_length=1, max_length=256)
    """A cron expression (as in a trigger's schedule, without H) for when the window opens,
    read on the calendar's time zone."""

    duration: str = Field(min_length=2, max_length=16, pattern=DURATION_PATTERN)
    """How long the window stays open, e.g. 2h, 90m, 1h30m; at most 168h. A window may
    cross midnight: `0 23 * * *` for 2h excludes 23:00 to 01:00."""


class Exclusions(ResourceModel):
    """Times that do not run. A scheduled time inside any of them is skipped (reason
    Excluded in the run ledger) instead of started."""

    model_config = ConfigDict(frozen=True)

    dates: list[Day] = Field(default_factory=list, max_length=ENTRIES_MAX)
    """Whole dates, YYYY-MM-DD, e.g. 2026-12-24."""

    yearly: list[YearlyDay] = Field(default_factory=list, max_length=ENTRIES_MAX)
    """Dates of every year, MM-DD, e.g. 12-25. 02-29 excludes 29 February in leap years
    only: in other years no date is excluded for it."""

    ranges: list[DateRange] = Field(default_factory=list, max_length=ENTRIES_MAX)
    """Ranges of whole dates, both ends included."""

    windows: list[Window] = Field(default_factory=list, max_length=64)
    """Recurring windows: a cron expression for when each opens, and how long it lasts."""


class CalendarSpec(ResourceModel):
    """What a ScheduleCalendar excludes, and on which wall clock."""

    model_config = ConfigDict(frozen=True)

    time_zone: str = Field(default="UTC", min_length=1, max_length=64)
    """The IANA time zone whose dates and wall clock the exclusions are read in."""

    description: str | None = Field(default=None, max_length=256)
    """What the calendar is for, shown by kubectl get."""

    exclude: Exclusions = Field(default_factory=Exclusions, json_schema_extra={"default": {}})
    """The dates, ranges and windows when referencing triggers do not run."""


CalendarName = Annotated[str, Field(min_length=1, max_length=253, pattern=NAME_PATTERN)]

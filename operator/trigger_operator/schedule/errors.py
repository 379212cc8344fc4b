"""Errors in what a trigger asks for, as the user should read them.

Each error carries the field it is about and the `reason` a Ready=False condition shows;
`str(error)` is one line that starts with the field, e.g.
"spec.schedule: minute field '61' out of range 0-59".
"""

from __future__ import annotations


class ScheduleError(ValueError):
    """The schedule of a trigger cannot be used as written."""

    reason = "InvalidSchedule"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class InvalidSchedule(ScheduleError):
    """A cron expression (`spec.schedule`, an item of `spec.schedules`, a calendar's
    window) is not one this operator reads, or never fires."""

    def __init__(self, problem: str, *, field: str = "spec.schedule") -> None:
        super().__init__(field, problem)


class InvalidTimeZone(ScheduleError):
    """`spec.timeZone` is not an IANA time zone name."""

    reason = "InvalidTimeZone"

    def __init__(self, problem: str) -> None:
        super().__init__("spec.timeZone", problem)


class InvalidRunAt(ScheduleError):
    """`spec.runAt` is not an RFC 3339 date-time with an offset."""

    reason = "InvalidRunAt"

    def __init__(self, problem: str) -> None:
        super().__init__("spec.runAt", problem)

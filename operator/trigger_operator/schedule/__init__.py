"""The pure schedule core: cron grammar, time zones, daylight saving, fire times, planning.

Nothing here reads the clock or does I/O: every function takes the instant it reasons
about. The modules, by role:

- `cron`: text to `CronExpression`, with errors that name the field (`errors`);
- `walltime`: the naive wall-clock times an expression matches, listed or counted;
- `zones`: IANA names to zones, and a zone's history as constant-offset segments;
- `times`: compiled schedules (`CronSchedule`, `OneTimeSchedule`) and their fire times;
- `progress`: a trigger's bookkeeping, and noticing edits of its schedule;
- `planner`: which due times to start now and which are missed;
- `jitter`: the stable per-trigger delay;
- `preview`: which schedule `trigger-operator preview` shows, from a manifest and flags.
"""

from trigger_operator.schedule.errors import (
    InvalidRunAt,
    InvalidSchedule,
    InvalidTimeZone,
    ScheduleError,
)
from trigger_operator.schedule.jitter import due_at, jitter_for
from trigger_operator.schedule.planner import Plan, latest_times, plan
from trigger_operator.schedule.progress import Progress, progress_from_status, schedule_fingerprint
from trigger_operator.schedule.times import (
    CronSchedule,
    OneTimeSchedule,
    Schedule,
    compile_schedule,
    next_after,
    schedule_of,
    upcoming,
)

__all__ = [
    "CronSchedule",
    "InvalidRunAt",
    "InvalidSchedule",
    "InvalidTimeZone",
    "OneTimeSchedule",
    "Plan",
    "Progress",
    "Schedule",
    "ScheduleError",
    "compile_schedule",
    "due_at",
    "jitter_for",
    "latest_times",
    "next_after",
    "plan",
    "progress_from_status",
    "schedule_fingerprint",
    "schedule_of",
    "upcoming",
]

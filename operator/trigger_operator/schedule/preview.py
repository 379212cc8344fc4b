"""`trigger-operator preview`: the next fire times of a schedule, as the scheduler sees them.

The times come from `compile_schedule` and `upcoming`, the functions the scheduler uses,
so a preview is what will run. Fields come from a manifest (`-f`) and are overridden by
flags given explicitly. Every bad input ends the command with exit status 1 (a bad
value) or 2 (a bad command line) and one line on stderr that names the field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import IO, Any, TypeVar

import click
import yaml

from trigger_operator.clock import SystemClock
from trigger_operator.models.instants import format_instant, parse_instant
from trigger_operator.models.spec import DaylightSaving, RepeatedTimes, SkippedTimes
from trigger_operator.schedule.errors import ScheduleError
from trigger_operator.schedule.times import compile_schedule, upcoming

_Choice = TypeVar("_Choice", SkippedTimes, RepeatedTimes)


class PreviewError(click.ClickException):
    """A bad input, shown as one `error: ...` line."""

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class _CommandLineError(PreviewError):
    exit_code = 2


class _OneLineErrors(click.Command):
    """Report a bad command line in one line too, instead of click's usage block."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as error:
            raise _CommandLineError(error.format_message()) from error


@click.command("preview", cls=_OneLineErrors)
@click.option("--schedule", metavar="EXPR", help="A cron expression (overrides the manifest's).")
@click.option(
    "--time-zone", metavar="TZ", help="An IANA time zone (default: the manifest's, else UTC)."
)
@click.option(
    "--after", metavar="RFC3339", help="List times strictly after this instant (default: now)."
)
@click.option("--count", type=click.IntRange(1, 1000), default=10, show_default=True)
@click.option("--skipped-times", metavar="RunAfterGap|Skip", help="Times a spring-forward skips.")
@click.option("--repeated-times", metavar="Auto|Once|Twice", help="Times a fall-back repeats.")
@click.option(
    "-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option(
    "-f", "--filename", type=click.File("r"), help="A ScheduledTrigger manifest ('-': stdin)."
)
def preview(
    schedule: str | None,
    time_zone: str | None,
    after: str | None,
    count: int,
    skipped_times: str | None,
    repeated_times: str | None,
    output: str,
    filename: IO[str] | None,
) -> None:
    """Print the next fire times of a schedule in UTC, one RFC 3339 instant per line."""
    spec = _manifest_spec(filename) if filename is not None else {}
    run_at = None if schedule is not None else _text(spec, "runAt")
    schedule = schedule if schedule is not None else _text(spec, "schedule")
    if schedule is None and run_at is None:
        raise PreviewError(
            "spec.schedule: give --schedule, or -f with a manifest that sets "
            "spec.schedule or spec.runAt"
        )
    rules = _mapping(spec.get("daylightSaving"), "spec.daylightSaving")
    defaults = DaylightSaving()
    daylight_saving = DaylightSaving(
        skipped_times=_choice(
            SkippedTimes,
            skipped_times or rules.get("skippedTimes"),
            field="spec.daylightSaving.skippedTimes",
            default=defaults.skipped_times,
        ),
        repeated_times=_choice(
            RepeatedTimes,
            repeated_times or rules.get("repeatedTimes"),
            field="spec.daylightSaving.repeatedTimes",
            default=defaults.repeated_times,
        ),
    )
    try:
        compiled = compile_schedule(
            schedule=schedule,
            run_at=run_at,
            time_zone=time_zone or _text(spec, "timeZone") or "UTC",
            daylight_saving=daylight_saving,
        )
    except ScheduleError as error:
        raise PreviewError(str(error)) from None
    times = upcoming(compiled, _after(after), count)
    click.echo(render(times, output=output), nl=False)


def render(times: Sequence[datetime], *, output: str) -> str:
    """The instants as text lines or as a JSON list, ending with a newline."""
    stamps = [format_instant(instant) for instant in times]
    if output == "json":
        return json.dumps(stamps) + "\n"
    return "".join(f"{stamp}\n" for stamp in stamps)


def _after(text: str | None) -> datetime:
    if text is None:
        return SystemClock().now()
    try:
        return parse_instant(text)
    except ValueError as error:
        raise PreviewError(f"--after: {error}") from None


def _manifest_spec(stream: IO[str]) -> Mapping[str, Any]:
    source = getattr(stream, "name", "manifest")
    try:
        documents = [d for d in yaml.safe_load_all(stream) if isinstance(d, Mapping)]
    except yaml.YAMLError as error:
        problem = " ".join(str(error).split())
        raise PreviewError(f"{source}: not valid YAML: {problem}") from None
    triggers = [d for d in documents if d.get("kind") == "ScheduledTrigger"]
    if not triggers:
        raise PreviewError(f"{source}: no ScheduledTrigger in the manifest")
    return _mapping(triggers[0].get("spec"), "spec")


def _mapping(value: object, field: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PreviewError(f"{field}: must be an object")
    return value


def _text(spec: Mapping[str, Any], key: str) -> str | None:
    value = spec.get(key)
    if value is None or isinstance(value, str):
        return value
    raise PreviewError(f"spec.{key}: must be a string")


def _choice(kind: type[_Choice], value: object, *, field: str, default: _Choice) -> _Choice:
    if value is None:
        return default
    if isinstance(value, str) and value in kind.__members__.values():
        return kind(value)
    allowed = ", ".join(member.value for member in kind)
    raise PreviewError(f"{field}: '{value}' is not one of {allowed}")

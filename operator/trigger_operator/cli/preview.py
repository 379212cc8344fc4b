"""`trigger-operator preview`: the next fire times of a schedule, as the scheduler sees them.

Times a calendar excludes (from `--calendar` files, and the manifest's spec.exclude) are
left out, as they are from status.upcomingRuns.

The schedule comes from `schedule.preview`, which compiles it with the scheduler's own
functions, so a preview is what will run. Fields come from a manifest (`-f`) and are
overridden by flags given explicitly. Every bad input ends the command with exit status 1
(a bad value) or 2 (a bad command line) and one line on stderr that names the field.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from itertools import islice
from typing import IO, Any

import click
import yaml

from trigger_operator.clock import SystemClock
from trigger_operator.models.instants import format_instant, parse_instant
from trigger_operator.schedule.calendars import allowed_times
from trigger_operator.schedule.preview import (
    PreviewError,
    PreviewRequest,
    calendar_specs,
    preview_exclusions,
    preview_schedule,
    trigger_spec,
    trigger_uid,
)


class BadPreviewInput(click.ClickException):
    """A bad input, shown as one `error: ...` line."""

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class _CommandLineError(BadPreviewInput):
    exit_code = 2


class _OneLineErrors(click.Command):
    """Report a bad command line in one line too, instead of click's usage block."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as error:
            raise _CommandLineError(error.format_message()) from error


@click.command("preview", cls=_OneLineErrors)
@click.option(
    "--schedule",
    "schedules",
    metavar="EXPR",
    multiple=True,
    help="A cron expression (overrides the manifest's); repeat it for a union of several.",
)
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
@click.option(
    "--uid", metavar="UID", help="The trigger's uid, which H hashes (default: the manifest's)."
)
@click.option(
    "--calendar",
    "calendar_files",
    type=click.File("r"),
    multiple=True,
    help="A ScheduleCalendar manifest whose exclusions apply (repeatable).",
)
def preview(
    schedules: tuple[str, ...],
    time_zone: str | None,
    after: str | None,
    count: int,
    skipped_times: str | None,
    repeated_times: str | None,
    output: str,
    filename: IO[str] | None,
    uid: str | None,
    calendar_files: tuple[IO[str], ...],
) -> None:
    """Print the next fire times of a schedule in UTC, one RFC 3339 instant per line."""
    try:
        documents = _manifest(filename) if filename is not None else None
        source = getattr(filename, "name", "manifest")
        request = PreviewRequest(
            spec=trigger_spec(documents, source=source) if documents is not None else {},
            uid=uid or (trigger_uid(documents, source=source) if documents is not None else None),
            schedules=schedules,
            time_zone=time_zone,
            skipped_times=skipped_times,
            repeated_times=repeated_times,
            calendars={
                name: body
                for stream in calendar_files
                for name, body in calendar_specs(
                    _manifest(stream), source=getattr(stream, "name", "calendar")
                ).items()
            },
        )
        compiled = preview_schedule(request)
        exclusions = preview_exclusions(request)
    except PreviewError as error:
        raise BadPreviewInput(str(error)) from None
    times = list(islice(allowed_times(compiled, exclusions, _after(after)), count))
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
        raise BadPreviewInput(f"--after: {error}") from None


def _manifest(stream: IO[str]) -> list[Any]:
    source = getattr(stream, "name", "manifest")
    try:
        return list(yaml.safe_load_all(stream))
    except yaml.YAMLError as error:
        problem = " ".join(str(error).split())
        raise PreviewError(f"{source}: not valid YAML: {problem}") from None

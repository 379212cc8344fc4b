"""Whether a trigger can run, and saying so on the trigger when it cannot.

What the CRD schema cannot check is checked here: the spec as the models read it, the
cron grammar and the time zone (compiling the schedule), the calendars it references
(they exist in its namespace and can be read), and the Job template (a
server-side dry-run create, once per generation; not again by a new leader when status
shows that generation Ready, nor for a template that passed in the same namespace a
moment ago or is being asked about right now, as thousands of triggers made from one
manifest are at a cold start). A problem is
reported on the trigger as Ready=False with a reason and a message naming the field,
and with one Warning Event per problem and generation: an invalid trigger never runs
and is never reported in a storm.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections import OrderedDict
from datetime import datetime
from typing import Any

import orjson
from pydantic import ValidationError

from trigger_operator.clock import Clock
from trigger_operator.jobs.builder import build_job
from trigger_operator.kube.gateway import Invalid
from trigger_operator.models.runs import RunKind
from trigger_operator.models.spec import TriggerSpec
from trigger_operator.models.status import TriggerStatus
from trigger_operator.schedule.errors import ScheduleError
from trigger_operator.schedule.times import schedule_of
from trigger_operator.scheduler.cache import TriggerEntry
from trigger_operator.scheduler.calendars import CalendarStore
from trigger_operator.scheduler.gate import Gate, require_leader
from trigger_operator.scheduler.ports import SchedulerGateway
from trigger_operator.scheduler.publish import StatusPublisher
from trigger_operator.scheduler.recorder import ref_context
from trigger_operator.scheduler.status import (
    Problem,
    invalid_status,
    ready_at,
    shows_problem,
    status_of,
)

log = logging.getLogger(__name__)

INVALID_JOB_TEMPLATE = "InvalidJobTemplate"

TEMPLATE_PASS_TTL = 600.0
"""Seconds a passed dry run of one template stands for other triggers in its namespace."""
TEMPLATE_PASS_LIMIT = 10_000


def load_spec(body: dict[str, Any]) -> tuple[TriggerSpec | None, Problem | None]:
    """The trigger's spec as a model, or the first problem the models or schedule find."""
    try:
        spec = TriggerSpec.model_validate(body.get("spec") or {})
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        field = f"spec.{where}" if where else "spec"
        return None, Problem("InvalidSpec", f"{field}: {first['msg']}")
    try:
        # Compiling the schedule is where grammar and zone errors surface.
        schedule_of(spec, hash_key=str((body.get("metadata") or {}).get("uid") or "") or None)
    except ScheduleError as error:
        return spec, Problem(error.reason, str(error))
    return spec, None


class Validator:
    """Loads and checks a trigger's spec; reports what is wrong on the trigger."""

    def __init__(
        self,
        *,
        gateway: SchedulerGateway,
        gate: Gate,
        clock: Clock,
        publisher: StatusPublisher,
        calendars: CalendarStore | None = None,
    ) -> None:
        self.gateway = gateway
        self.gate = gate
        self.clock = clock
        self.publisher = publisher
        # (namespace, template key) → when its dry run last passed (monotonic seconds).
        self._passed: OrderedDict[tuple[str, str], float] = OrderedDict()
        # (namespace, template key) → whether the dry run being asked now passes.
        self._asking: dict[tuple[str, str], asyncio.Future[bool]] = {}
        self.calendars = calendars or CalendarStore()

    async def check(
        self, entry: TriggerEntry, status: TriggerStatus | None = None
    ) -> tuple[TriggerSpec | None, Problem | None]:
        """The spec, and the problem that keeps it from running (None when it can run).

        `status`: the entry's, when the caller has read it already.
        """
        spec, problem = load_spec(entry.body)
        if spec is not None and problem is None:
            try:
                self.calendars.resolve(entry.namespace, spec)
            except ScheduleError as error:
                return spec, Problem(error.reason, str(error))
            problem = await self._check_job_template(entry, spec, status)
        return spec, problem

    async def report(
        self,
        entry: TriggerEntry,
        status: TriggerStatus,
        problem: Problem,
        now: datetime,
        *,
        version: str,
        fingerprint: str | None = None,
    ) -> None:
        """Show `problem` in status (once) and in one Warning Event per generation.

        `status` as read at resourceVersion `version`; `fingerprint`: the schedule's, when
        the spec is valid (see `invalid_status`).
        """
        generation = entry.generation
        if not shows_problem(status, problem, generation=generation):
            require_leader(self.gate)
            new_status = invalid_status(
                status, problem, generation=generation, now=now, fingerprint=fingerprint
            )
            await self.publisher.write_status(entry, status, new_status, version=version)
        key = (generation, problem.reason, problem.message)
        if entry.reported_problem == key:
            return
        entry.reported_problem = key
        log.warning(
            "trigger is invalid and will not run",
            extra={
                **ref_context(entry.ref),
                "revision": self.gate.writer.revision,
                "reason": problem.reason,
                "problem": problem.message,
            },
        )
        await self.publisher.warn(entry, reason=problem.reason, message=problem.message, now=now)

    async def _check_job_template(
        self, entry: TriggerEntry, spec: TriggerSpec, status: TriggerStatus | None
    ) -> Problem | None:
        generation = entry.generation
        if entry.template_ok_generation == generation:
            return None
        if entry.template_error is not None and entry.template_error[0] == generation:
            return Problem(INVALID_JOB_TEMPLATE, entry.template_error[1])
        if ready_at(status if status is not None else status_of(entry.body), generation):
            # A leader (this one before a restart, or its predecessor) ran this very
            # generation: its template passed then. A new leader does not ask again.
            entry.template_ok_generation = generation
            return None
        key = (entry.namespace, _template_key(entry.body, spec))
        if await self._passed_for_another(key):
            # The same template in the same namespace passed a moment ago, or did just
            # now for the trigger whose dry run this one waited for (thousands of
            # triggers made from one manifest): the answer would be the same.
            entry.template_ok_generation = generation
            return None
        body = build_job(
            entry.ref,
            spec.job_template.model_dump(mode="json", by_alias=True),
            scheduled_for=self.clock.now(),
            kind=RunKind.SCHEDULED,
            writer=self.gate.writer,
            payload=spec.payload,
        )
        asking = None
        if key not in self._asking:
            asking = self._asking[key] = asyncio.get_running_loop().create_future()
        passed = False
        try:
            await self.gateway.dry_run_job(body)
            passed = True
        except Invalid as error:
            message = f"spec.jobTemplate: the API server rejects the Job: {error}"
            entry.template_error = (generation, message)
            return Problem(INVALID_JOB_TEMPLATE, message)
        finally:
            if asking is not None:
                del self._asking[key]
                asking.set_result(passed)
        entry.template_ok_generation = generation
        entry.template_error = None
        self._remember(key)
        return None

    async def _passed_for_another(self, key: tuple[str, str]) -> bool:
        """Whether `key`'s dry run passed a moment ago, or passes for the one in flight.

        A rejection, or an error, is not shared: the waiter asks for itself, since the
        API server may have rejected what differs between triggers (a name, a label).
        """
        passed = self._passed.get(key)
        if passed is not None and self.clock.monotonic() - passed < TEMPLATE_PASS_TTL:
            return True
        asking = self._asking.get(key)
        # Shielded: a waiter cancelled (its pass ends) leaves the owner's answer alone.
        return asking is not None and await asyncio.shield(asking)

    def _remember(self, key: tuple[str, str]) -> None:
        self._passed[key] = self.clock.monotonic()
        self._passed.move_to_end(key)
        while len(self._passed) > TEMPLATE_PASS_LIMIT:
            self._passed.popitem(last=False)


def _template_key(body: dict[str, Any], spec: TriggerSpec) -> str:
    """What the dry run of a trigger's Job depends on, besides names and the namespace:
    the template as the trigger spells it (`spec`, read from `body`, is the same template
    whenever the spelling is), and the payload."""
    shape = {"jobTemplate": body["spec"]["jobTemplate"], "payload": spec.payload}
    try:
        encoded = orjson.dumps(shape, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # an integer beyond 64 bits, which only the standard library writes
        encoded = json.dumps(shape, sort_keys=True).encode()
    return hashlib.sha256(encoded).hexdigest()

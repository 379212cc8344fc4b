"""The ScheduledTrigger resource's names in the Kubernetes API, defined once.

The CRD generator, the Job builder (owner references), the gateway, the watch handlers
and the command line all name the resource with these; labels and annotations share the
group as their prefix.
"""

from __future__ import annotations

GROUP = "triggers.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "ScheduledTrigger"
PLURAL = "scheduledtriggers"
SINGULAR = "scheduledtrigger"
SHORT_NAMES = ("strig",)

CALENDAR_KIND = "ScheduleCalendar"
CALENDAR_PLURAL = "schedulecalendars"
CALENDAR_SINGULAR = "schedulecalendar"
CALENDAR_SHORT_NAMES = ("scal",)

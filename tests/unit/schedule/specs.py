"""A minimal valid TriggerSpec for tests, with fields overridden by keyword (camelCase)."""

from __future__ import annotations

from typing import Any

from trigger_operator.models.spec import TriggerSpec

JOB_TEMPLATE: dict[str, Any] = {
    "spec": {
        "template": {
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "run", "image": "busybox"}],
            }
        }
    }
}


def make_spec(**fields: Any) -> TriggerSpec:
    body: dict[str, Any] = {"jobTemplate": JOB_TEMPLATE, **fields}
    if not {"schedule", "schedules", "runAt"} & set(body):
        body["schedule"] = "0 * * * *"
    return TriggerSpec.model_validate(body)

"""The base of every resource model: camelCase on the wire, snake_case in Python.

Fields are read by either name (`run_at` or `runAt`) and written by alias, so
`model_dump(mode="json")` is exactly what the Kubernetes API stores. Attribute
docstrings become field descriptions, which the CRD generator copies into the schema
that `kubectl explain` shows: a field's docstring is written for users of the resource.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class ResourceModel(BaseModel):
    """A part of the ScheduledTrigger resource."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        use_attribute_docstrings=True,
        # The API server prunes unknown fields; a newer CRD must not break an older operator.
        extra="ignore",
    )

"""trigger-operator: ScheduledTrigger resources run as idempotent one-shot Kubernetes Jobs."""

__version__ = "0.1.0"

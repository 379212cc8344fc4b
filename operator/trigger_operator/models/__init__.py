"""Plain data: the trigger spec and status, and the operator's settings (pydantic)."""

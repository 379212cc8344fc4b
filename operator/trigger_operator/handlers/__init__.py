"""Thin kopf handlers that feed the scheduler's cache, and the process that runs them."""

"""leadership."""

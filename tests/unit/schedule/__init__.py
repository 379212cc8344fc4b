"""Unit tests of the pure schedule core."""

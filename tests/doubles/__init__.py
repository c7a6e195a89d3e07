"""Test doubles for remote platforms (they follow the platforms' documented APIs)."""

"""Test doubles: remote platforms (following their documented APIs) and a fake clock."""

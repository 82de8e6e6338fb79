"""Helpers shared by tests (plain modules; conftest files hold fixtures only)."""

"""Named errors shared by every resource. Domains raise their own subclasses."""

from __future__ import annotations


class PlatformError(Exception):
    """Base of every error this platform raises on purpose."""


class ConfigurationError(PlatformError):
    """A setting is missing or invalid; the message names it."""


class ServiceUnavailable(PlatformError):
    """An external system could not be reached after retries (or its breaker is open)."""

    def __init__(self, service: str, reason: str):
        super().__init__(f"{service} unavailable: {reason}")
        self.service = service
        self.reason = reason


class TransientError(PlatformError):
    """A failure worth retrying (timeouts, 429, 5xx); ``retry_after`` seconds if the server said."""

    def __init__(self, message: str, retry_after: float | None = None, status: int | None = None):
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


class PermanentError(PlatformError):
    """A failure that a retry will not fix (4xx other than 429, validation errors)."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


class ReadOnlyViolation(PlatformError):
    """A query sent to the read-only MySQL is not a single plain SELECT; ``reason`` says why."""

    def __init__(self, reason: str, sql: str = ""):
        super().__init__(f"query rejected: {reason}")
        self.reason = reason
        self.sql = sql


class QuerySyntaxError(PlatformError):
    """The SQL could not be parsed (or the server reported a syntax error)."""


class QueryPermissionError(PlatformError):
    """The database refused the statement for lack of privileges."""


class QueryTimeoutError(PlatformError):
    """The statement ran past its time limit and was stopped by the server."""


class MigrationError(PlatformError):
    """A migration failed, or an applied migration file was edited afterwards."""

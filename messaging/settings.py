"""``MessagingSettings``: the messaging location's run-time switches, read when a run uses them.

``send_mode`` comes from ``MESSAGING_SEND_MODE`` (``dry_run`` or ``live``) and is ``dry_run``
when the variable is unset or empty. ``dg.EnvVar`` would refuse an unset variable, so the
resource holds the variable's *name* and reads it at run time, as the Storage resource does
with its key.
"""

from __future__ import annotations

import os
from typing import Literal, cast

import dagster as dg
from pydantic import Field

from messaging import constants as C
from messaging.models import WorkflowConfigError

SendMode = Literal["dry_run", "live"]
SEND_MODE_ENV = "MESSAGING_SEND_MODE"


def parse_send_mode(raw: str | None, variable: str = SEND_MODE_ENV) -> SendMode:
    """``dry_run`` when unset or empty; otherwise one of ``SEND_MODES`` (case-insensitive).

    Raises:
        WorkflowConfigError: any other value, naming the variable.
    """
    value = (raw or "").strip().lower() or "dry_run"
    if value not in C.SEND_MODES:
        raise WorkflowConfigError(f"{variable} must be one of {C.SEND_MODES}, got {raw!r}")
    return cast(SendMode, value)


# Dagster's resource base is generic over its own value; the bare form is its documented one.
class MessagingSettings(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Run-time switches of the messaging location (read from the environment when used)."""

    send_mode_env: str = Field(
        default=SEND_MODE_ENV,
        description="name of the variable holding the send mode (dry_run | live)",
    )

    def send_mode(self) -> SendMode:
        """Whether runs send for real (``live``) or only render and log (``dry_run``)."""
        return parse_send_mode(os.environ.get(self.send_mode_env), self.send_mode_env)


# The one instance the location binds (as ``messaging_settings``).
messaging_settings = MessagingSettings()

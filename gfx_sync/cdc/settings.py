"""The CDC stream's settings as a Dagster resource, so ops, sensors and checks read no
environment themselves."""

from __future__ import annotations

from typing import Literal

import dagster as dg

from gfx_sync.cdc.config import config_for
from gfx_sync.cdc.models import CdcConfig


class CdcSettings(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Which slot and publication the stream uses and what it does on schema drift.

    A field left empty falls back to ``GFX_CDC_SLOT_NAME`` / ``GFX_CDC_PUBLICATION`` /
    ``GFX_CDC_DRIFT_POLICY`` (read when a run asks, never at import), then to the defaults
    (``gfx_cdc_<source database>``, ``gfx_publication``, ``stop``).
    """

    slot_name: str = ""
    publication: str = ""
    drift_policy: Literal["", "stop", "apply"] = ""

    def config(self, source_dsn: str) -> CdcConfig:
        """The stream configuration for the spec list's CDC tables on ``source_dsn``."""
        return config_for(
            source_dsn,
            slot_name=self.slot_name or None,
            publication=self.publication or None,
            drift_policy=self.drift_policy or None,
        )


# The one instance the code location binds (resources are compared by identity on merge).
cdc_settings = CdcSettings()

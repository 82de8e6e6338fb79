"""One runner per target: with GFX_CDC_RUNNER=debezium the pgoutput paths stand aside (the
sensor skips with the reason, the worker command refuses with exit code 4), as the Debezium
engine does when pgoutput is selected."""

from __future__ import annotations

import dagster as dg
import pytest

from gfx_sync.cdc.__main__ import main as cli
from gfx_sync.cdc.definitions_parts import gfx_cdc_sensor
from gfx_sync.cdc.settings import CdcSettings
from resources.postgres import PostgresResource

# nothing listens here: the switch must decide before any connection is made
_NOWHERE = "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1"


@pytest.mark.unit
def test_pgoutput_sensor_skips_with_a_reason_when_the_debezium_runner_is_selected(monkeypatch):
    monkeypatch.setenv("GFX_CDC_RUNNER", "debezium")
    with dg.build_sensor_context(
        resources={
            "gfx_source_db": PostgresResource(dsn=_NOWHERE),
            "supabase_db": PostgresResource(dsn=_NOWHERE),
            "gfx_cdc": CdcSettings(slot_name="s", publication="p"),
        }
    ) as context:
        result = gfx_cdc_sensor(context)
    assert isinstance(result, dg.SkipReason)
    assert "GFX_CDC_RUNNER" in (result.skip_message or "")
    assert "debezium" in (result.skip_message or "")


@pytest.mark.e2e
def test_worker_command_refuses_with_exit_4_when_the_debezium_runner_is_selected(
    monkeypatch, capsys
):
    monkeypatch.setenv("GFX_CDC_RUNNER", "debezium")
    monkeypatch.setenv("GFX_SOURCE_DB_URL", _NOWHERE)
    monkeypatch.setenv("SUPABASE_DB_URL", _NOWHERE)
    code = cli(["worker", "--no-report", "--max-seconds", "1"])
    assert code == 4
    err = capsys.readouterr().err
    assert "GFX_CDC_RUNNER" in err and "debezium" in err

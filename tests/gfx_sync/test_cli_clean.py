"""The README's CLI commands leave no transaction open behind them (psycopg_pool would warn and
roll back on every call)."""

import logging

import pytest

from gfx_sync import cli

pytestmark = pytest.mark.e2e


def test_drift_cli_returns_its_connections_idle(clean, caplog, capsys):
    caplog.set_level(logging.WARNING, logger="psycopg.pool")
    assert cli.main(["drift"]) == 0
    assert "schema: no drift" in capsys.readouterr().out
    assert not [r for r in caplog.records if "rolling back returned connection" in r.getMessage()]

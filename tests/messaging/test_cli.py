"""`python -m messaging.cli`: search, preview and a manual workflow run."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from messaging.cli import app

pytestmark = pytest.mark.e2e

runner = CliRunner()


def _json(output: str):
    return json.loads(output[output.index("{") :])


def test_search_command_pages_results(crm):
    out = runner.invoke(app, ["search", "customers", "010", "--limit", "3"])
    assert out.exit_code == 0, out.output
    data = _json(out.output)
    assert len(data["rows"]) == 3 and data["total"] > 3 and data["has_more"], data


def test_preview_command_counts_targets(crm):
    out = runner.invoke(
        app,
        [
            "preview",
            '{"table": "customers", "filters": [{"field": "grade", "op": "=", "value": "VIP"}]}',
        ],
    )
    assert out.exit_code == 0, out.output
    preview = _json(out.output)
    assert (
        preview["total"] == preview["sendable"] + preview["invalid_phone"] + preview["duplicates"]
    ), preview


def test_run_manual_workflow_from_cli(supabase_db, platform_ids, monkeypatch, tmp_path):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    before = supabase_db.fetch_value(
        "SELECT count(*) FROM public.workflow_runs WHERE workflow_id = %s",
        (platform_ids["workflow:manual"],),
    )
    out = runner.invoke(app, ["run", platform_ids["workflow:manual"]])
    assert out.exit_code == 0, out.output
    after = supabase_db.fetch_value(
        "SELECT count(*) FROM public.workflow_runs WHERE workflow_id = %s",
        (platform_ids["workflow:manual"],),
    )
    assert after == before + 1


def test_webhook_server_process_stores_events_without_dagster(
    supabase_db, crm, platform_ids, monkeypatch
):
    """The endpoint as its own process (as deployed): a signed POST from the CLI is stored
    durably."""
    import os
    import subprocess
    import sys
    import time

    import httpx

    from standins.base import free_port

    port = free_port()
    env = {
        **os.environ,
        "MESSAGING_WEBHOOK_PORT": str(port),
        "MESSAGING_WEBHOOK_SECRET": "proc-secret",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "messaging.webhook"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "webhook server did not start"
            time.sleep(0.2)
        wid = platform_ids["workflow:webhook"]
        before = supabase_db.fetch_value("SELECT count(*) FROM public.messaging_webhook_events")
        monkeypatch.setenv("MESSAGING_WEBHOOK_SECRET", "wrong-secret")
        bad = runner.invoke(
            app,
            [
                "webhook",
                wid,
                "--payload",
                '{"customer_id": 3}',
                "--url",
                f"http://127.0.0.1:{port}",
            ],
        )
        assert bad.exit_code == 1 and "401" in bad.output
        monkeypatch.setenv("MESSAGING_WEBHOOK_SECRET", "proc-secret")
        good = runner.invoke(
            app,
            [
                "webhook",
                wid,
                "--payload",
                '{"customer_id": 3}',
                "--url",
                f"http://127.0.0.1:{port}",
            ],
        )
        assert good.exit_code == 0 and "202" in good.output, good.output
        assert (
            supabase_db.fetch_value("SELECT count(*) FROM public.messaging_webhook_events")
            == before + 1
        )
    finally:
        server.terminate()
        server.wait(timeout=10)

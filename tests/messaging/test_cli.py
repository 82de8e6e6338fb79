"""`python -m messaging.cli`: search, preview and a manual workflow run."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from messaging.cli import app

runner = CliRunner()


def _json(output: str):
    return json.loads(output[output.index("{"):])


def test_search_and_preview(crm):
    out = runner.invoke(app, ["search", "customers", "010", "--limit", "3"])
    assert out.exit_code == 0, out.output
    data = _json(out.output)
    assert len(data["rows"]) == 3 and data["total"] > 3 and data["has_more"]
    out = runner.invoke(app, ["preview", '{"table": "customers", "filters": [{"field": "grade", "op": "=", "value": "VIP"}]}'])
    assert out.exit_code == 0, out.output
    preview = _json(out.output)
    assert preview["total"] == preview["sendable"] + preview["invalid_phone"] + preview["duplicates"]


def test_run_manual_workflow_from_cli(supabase_db, platform_ids, monkeypatch, tmp_path):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    before = supabase_db.fetch_value("SELECT count(*) FROM public.workflow_runs WHERE workflow_id = %s",
                                     (platform_ids["workflow:manual"],))
    out = runner.invoke(app, ["run", platform_ids["workflow:manual"]])
    assert out.exit_code == 0, out.output
    after = supabase_db.fetch_value("SELECT count(*) FROM public.workflow_runs WHERE workflow_id = %s",
                                    (platform_ids["workflow:manual"],))
    assert after == before + 1

"""`messaging suppress add/remove/list` and `messaging cancel` on the command line."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from messaging.cli import app

pytestmark = pytest.mark.e2e

runner = CliRunner()


def test_suppress_add_list_remove_records_who(supabase_db):
    phone = "010-9999-0042"
    out = runner.invoke(
        app, ["suppress", "add", phone, "--by", "park@ops", "--source", "reply", "--reason", "STOP"]
    )
    assert out.exit_code == 0, out.output
    assert "01099990042" not in out.output, "the number is masked in the output"
    listed = runner.invoke(app, ["suppress", "list"])
    assert "010****0042" in listed.output and "park@ops" in listed.output, listed.output
    out = runner.invoke(app, ["suppress", "remove", phone, "--by", "choi@ops"])
    assert out.exit_code == 0, out.output
    actors = supabase_db.fetch_all(
        "SELECT action, actor FROM public.messaging_suppression_log WHERE phone = '01099990042'"
        " ORDER BY id"
    )
    assert [(r["action"], r["actor"]) for r in actors][-2:] == [
        ("add", "park@ops"),
        ("remove", "choi@ops"),
    ]


def test_cancel_of_an_unknown_execution_fails(supabase_db):
    out = runner.invoke(app, ["cancel", "no-such-execution", "--by", "ops"])
    assert out.exit_code == 1 and "no running execution" in out.output

"""``messaging`` / ``python -m messaging.cli``: run a workflow, search the CRM, preview
targets, send a signed webhook.

``run`` launches the ``messaging_run_workflow`` job in this process against the instance in
``DAGSTER_HOME`` (the run shows in the UI); the equivalent standard command is
``dg launch -m messaging.definitions --job messaging_run_workflow --config-json '{"ops":
{"messaging_workflow_run": {"config": {"workflow_id": "<uuid>"}}}}'``.

The commands use the shared resource instances (``resources.shared``), resolved from the
environment contract after the local defaults are applied.
"""

from __future__ import annotations

import json
import os
import time

import typer
from rich.console import Console

from messaging.constants import LOCAL_WEBHOOK_SECRET
from messaging.constants import WEBHOOK_DEFAULT_PORT as DEFAULT_PORT
from resources.environment import apply_local_defaults
from resources.mysql import MySQLResource
from resources.postgres import PostgresResource

app = typer.Typer(
    help="Messaging: workflows, CRM search, target preview, webhooks.", no_args_is_help=True
)
console = Console()


@app.callback()
def _main() -> None:
    apply_local_defaults()


@app.command("run")
def run(
    workflow_id: str = typer.Argument(..., help="workflows.id"),
    execution_key: str = typer.Option(
        "", help="resume/identify an execution (default: the Dagster run)"
    ),
) -> None:
    """Run one execution of a workflow (MESSAGING_SEND_MODE decides dry_run or live)."""
    import dagster as dg

    from messaging.assets import WorkflowRunConfig, messaging_workflow_run
    from messaging.definitions import defs
    from messaging.jobs import run_workflow_job

    job = defs.resolve_job_def(run_workflow_job.name)
    config = WorkflowRunConfig(workflow_id=workflow_id, execution_key=execution_key)
    # DAGSTER_HOME decides where the run is recorded, as for every Dagster command.
    home = os.environ.get("DAGSTER_HOME")
    instance = dg.DagsterInstance.get() if home else dg.DagsterInstance.ephemeral()
    result = job.execute_in_process(
        run_config=dg.RunConfig(ops={messaging_workflow_run.op.name: config}),
        instance=instance,
        raise_on_error=False,
    )
    for event in result.get_asset_materialization_events():
        if event.asset_key.path[-1] == "workflow_runs":
            meta = event.materialization.metadata
            console.print({k: v.value for k, v in meta.items() if not k.startswith("circuit/")})
    raise typer.Exit(0 if result.success else 1)


def _mysql() -> MySQLResource:
    """The shared read-only MySQL resource, resolved from the environment (outside a run)."""
    from resources.shared import mysql

    resolved: MySQLResource = mysql.process_config_and_initialize()
    return resolved


@app.command("search")
def search_cmd(table: str, term: str, limit: int = 20, offset: int = 0) -> None:
    """Keyword search over a mapped MySQL table (parameterized, wildcards escaped, paginated)."""
    from messaging.catalog import load_table_mappings, search

    out = search(_mysql(), load_table_mappings(), table, term, limit=limit, offset=offset)
    console.print_json(json.dumps(out, default=str, ensure_ascii=False))


@app.command("preview")
def preview_cmd(
    target_json: str = typer.Argument(..., help='target_config, e.g. {"table": "customers"}'),
) -> None:
    """Target preview with counts (total, sendable, invalid phones, duplicates, sample)."""
    from messaging.catalog import load_table_mappings, preview_targets

    out = preview_targets(_mysql(), json.loads(target_json), load_table_mappings())
    console.print_json(json.dumps(out, default=str, ensure_ascii=False))


@app.command("webhook")
def webhook_cmd(
    workflow_id: str,
    payload: str = typer.Option("{}", help="JSON object"),
    url: str = typer.Option("", help="default http://127.0.0.1:$MESSAGING_WEBHOOK_PORT"),
    port: int = typer.Option(DEFAULT_PORT, envvar="MESSAGING_WEBHOOK_PORT", hidden=True),
    secret: str = typer.Option(
        LOCAL_WEBHOOK_SECRET, envvar="MESSAGING_WEBHOOK_SECRET", hidden=True
    ),
) -> None:
    """Send a signed webhook to the endpoint (for demos and smoke tests)."""
    import httpx

    from messaging.webhook import sign_v2

    base = url or f"http://127.0.0.1:{port}"
    body = json.dumps(json.loads(payload), ensure_ascii=False).encode()
    ts = str(int(time.time()))
    path = f"/webhooks/{workflow_id}"
    response = httpx.post(
        f"{base}{path}",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Webhook-Timestamp": ts,
            "X-Webhook-Signature": sign_v2(secret, "POST", path, ts, "", body),
        },
    )
    console.print(response.status_code, response.text)
    raise typer.Exit(0 if response.status_code < 300 else 1)


def _supabase_db() -> PostgresResource:
    """The shared Supabase PostgreSQL resource, resolved from the environment."""
    from resources.shared import supabase_db

    resolved: PostgresResource = supabase_db.process_config_and_initialize()
    return resolved


@app.command("cancel")
def cancel_cmd(
    run: str = typer.Argument(..., help="workflow_runs.id or the execution key"),
    by: str = typer.Option(..., "--by", help="who cancels (recorded)"),
) -> None:
    """Cancel a running send: it stops before its next batch; unsent rows become cancelled."""
    from messaging.bookkeeping import request_cancel

    found = request_cancel(_supabase_db(), run, by)
    console.print("cancel requested" if found else f"no running execution {run!r}")
    raise typer.Exit(0 if found else 1)


suppress_app = typer.Typer(help="The advertising suppression list (080 opt-outs, replies, manual).")
app.add_typer(suppress_app, name="suppress")


@suppress_app.command("add")
def suppress_add(
    phone: str,
    by: str = typer.Option(..., "--by", help="who adds the number (recorded)"),
    source: str = typer.Option("manual", help="080 | reply | manual"),
    reason: str = typer.Option("", help="why (recorded)"),
) -> None:
    """Never send advertising to PHONE again (checked at send time)."""
    from messaging.suppression import SOURCES, add_suppression

    if source not in SOURCES:
        raise typer.BadParameter(f"source must be one of {SOURCES}")
    number = add_suppression(
        _supabase_db(),
        phone,
        source=source,  # type: ignore[arg-type]
        actor=by,
        reason=reason or None,
    )
    console.print(f"suppressed {number[:3]}****{number[-4:]}")


@suppress_app.command("remove")
def suppress_remove(
    phone: str,
    by: str = typer.Option(..., "--by", help="who removes the number (recorded)"),
    reason: str = typer.Option("", help="why (recorded)"),
) -> None:
    """Take PHONE off the suppression list."""
    from messaging.suppression import remove_suppression

    removed = remove_suppression(_supabase_db(), phone, actor=by, reason=reason or None)
    console.print("removed" if removed else "was not on the list")
    raise typer.Exit(0 if removed else 1)


@suppress_app.command("list")
def suppress_list(limit: int = 100) -> None:
    """The most recently suppressed numbers (masked), with who and when."""
    from messaging.suppression import list_suppressions

    for row in list_suppressions(_supabase_db(), limit):
        phone = row["phone"]
        console.print(
            f"{phone[:3]}****{phone[-4:]}  {row['source']:<6} {row['added_by']}  "
            f"{row['added_at']:%Y-%m-%d %H:%M}  {row['reason'] or ''}"
        )


if __name__ == "__main__":
    app()

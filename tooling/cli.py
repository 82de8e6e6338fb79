"""``platform``: the shared command line (services, migrations, demo materialization).

Each domain has its own command (``consultation-backup``, ``gfx-sync``, ``messaging``) for
its verbs; this one owns what they share.
"""

from __future__ import annotations

import os
import shlex
import sys

import typer
from rich.console import Console
from rich.table import Table

from resources.environment import LOCAL_DEFAULTS, current_environment
from resources.errors import PlatformError
from resources.migrations import MIGRATION_SETS, applicable, apply_migrations, sets_named, status
from tooling.local_setup import prepare_local_environment

app = typer.Typer(help="Shared platform commands.", no_args_is_help=True)
services_app = typer.Typer(help="Local PostgreSQL and MariaDB.", no_args_is_help=True)
migrations_app = typer.Typer(
    help="SQL migrations (ordered, idempotent, recorded).", no_args_is_help=True
)
app.add_typer(services_app, name="services")
app.add_typer(migrations_app, name="migrations")
console = Console()

TARGET_ENV = {"supabase": "SUPABASE_DB_URL", "gfx_source": "GFX_SOURCE_DB_URL"}


def _fail(exc: Exception) -> None:
    console.print(f"[red]error:[/red] {exc}")
    raise typer.Exit(1)


@app.callback()
def _main() -> None:
    prepare_local_environment()


@app.command("env")
def env_command(
    export: bool = typer.Option(
        False, "--export", help="print `export NAME=value` lines for the local defaults"
    ),
) -> None:
    """Say which environment this is (PLATFORM_ENV); with --export, the local defaults.

    `eval "$(.venv/bin/platform env --export)"` gives your shell what `platform exec` gives one
    command. In production nothing is printed: nothing is defaulted there.
    """
    if not export:
        console.print(current_environment())
        return
    if current_environment() != "local":
        return
    names = [*LOCAL_DEFAULTS, "GOOGLE_SERVICE_ACCOUNT_JSON"]
    for name in names:
        typer.echo(f"export {name}={shlex.quote(os.environ[name])}")


@app.command(
    "exec",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def exec_command(ctx: typer.Context) -> None:
    """Run a command with the local defaults applied (e.g. `platform exec -- dg dev`).

    Locally every unset contract variable gets its local value and the Drive stand-in's key
    is written; in production the environment is passed on unchanged.
    """
    argv = list(ctx.args[1:] if ctx.args[:1] == ["--"] else ctx.args)
    if not argv:
        _fail(ValueError("nothing to run: platform exec -- COMMAND [ARGS...]"))
    os.execvp(argv[0], argv)


@services_app.command("ensure")
def services_ensure(
    distributed: bool = typer.Option(
        False, "--distributed", help="also the instance database and the RabbitMQ broker"
    ),
) -> None:
    """Start the local servers, set wal_level=logical, create the databases and the reader user."""
    from tooling.services import ensure_all, ensure_distributed

    try:
        ensure_all()
        if distributed:
            ensure_distributed()
    except PlatformError as exc:
        _fail(exc)


def _selected(sets: list[str] | None):
    return sets_named(sets) if sets else list(MIGRATION_SETS)


@migrations_app.command("apply")
def migrations_apply(
    sets: list[str] = typer.Option(None, "--set", help="only these sets (repeatable); default all"),
    dry_run: bool = typer.Option(False, "--dry-run", help="list what would be applied"),
) -> None:
    """Apply pending migrations to each set's database (twice in a row is a no-op).

    In production the external source database's set is never applied (it is not ours).
    """
    selected = _selected(sets)
    skipped = [m.name for m in selected if m not in applicable(selected, current_environment())]
    if skipped:
        console.print(
            f"skipping {', '.join(skipped)}: local-only (PLATFORM_ENV={current_environment()})"
        )
    selected = applicable(selected, current_environment())
    try:
        for target in dict.fromkeys(m.target for m in selected):
            dsn = os.environ[TARGET_ENV[target]]
            report = apply_migrations(
                dsn,
                [m for m in selected if m.target == target],
                dry_run=dry_run,
                log=lambda m: console.print(f"  {m}"),
            )
            verb = "would apply" if dry_run else "applied"
            names = report.pending if dry_run else report.applied
            console.print(
                f"{target}: {verb} {len(names)}, already applied {len(report.already_applied)}"
            )
    except PlatformError as exc:
        _fail(exc)


@migrations_app.command("status")
def migrations_status(sets: list[str] = typer.Option(None, "--set")) -> None:
    """Show every migration file and whether it is applied, pending or edited."""
    selected = _selected(sets)
    table = Table("set", "version", "name", "state")
    for target in dict.fromkeys(m.target for m in selected):
        for row in status(
            os.environ[TARGET_ENV[target]], [m for m in selected if m.target == target]
        ):
            table.add_row(row["set"], row["version"], row["name"], row["state"])
    console.print(table)


@app.command("materialize-all")
def materialize_all_command(
    workspace: str = typer.Option(
        "workspace.yaml", help="workspace file naming the code locations"
    ),
    location: list[str] = typer.Option(
        None, "--location", help="only this code location (repeatable); runs in this process"
    ),
) -> None:
    """Materialize every asset of every code location once (recorded in DAGSTER_HOME).

    Without --location the three locations run at the same time, one process each.
    """
    from tooling.materialize import materialize_workspace, materialize_workspace_in_parallel

    if location:
        ok = materialize_workspace(workspace, log=console.print, locations=location)
    else:
        ok = materialize_workspace_in_parallel(workspace, log=console.print)
    if not ok:
        raise typer.Exit(1)


@app.command("up")
def up_command(
    port: int = typer.Option(3000, help="port of the Dagster UI"),
    workers: int = typer.Option(
        0, help="Celery workers to start (the distributed profile; 0 = single machine)"
    ),
    cdc_worker: bool = typer.Option(
        True, help="run the gfx CDC worker (sub-second lag; else the sensor drains the slot)"
    ),
    adopt: list[str] = typer.Option(
        None, "--adopt", help="pid file of a process to stop with the others (repeatable)"
    ),
    log_dir: str = typer.Option(
        "", help="directory for the processes' logs (default $DAGSTER_HOME/logs)"
    ),
    only_workers: bool = typer.Option(
        False, "--only-workers", help="only the Celery workers (another machine runs the UI)"
    ),
    sentinel: str = typer.Option(
        "",
        help="file written at start; everything stops when it is deleted (make deletes the"
        " target it was building when it gets SIGINT or SIGTERM)",
    ),
) -> None:
    """Serve the UI and daemon with every long-running process; Ctrl-C or SIGTERM stops all.

    Started and supervised (restarted with backoff, one heartbeat row each): `dg dev`, the gfx
    CDC worker, the gfx listener, the messaging webhook receiver and, with --workers N, N Celery
    workers.
    """
    from pathlib import Path

    from tooling.supervisor import Supervisor

    services = up_services(port=port, workers=workers, cdc_worker=cdc_worker)
    if only_workers:
        services = [s for s in services if s.name.startswith("celery-worker-")]
        for s in services:
            s.essential = False
    home = Path(os.environ.get("DAGSTER_HOME", ".dagster_home"))
    sup = Supervisor(
        services,
        adopt_pidfiles=[Path(p) for p in adopt or []],
        log_dir=Path(log_dir) if log_dir else home / "logs",
        heartbeat_url=os.environ.get("SUPABASE_DB_URL"),
        sentinel=Path(sentinel) if sentinel else None,
        say=lambda m: console.print(m, highlight=False),
    )
    raise typer.Exit(sup.run())


def up_services(*, port: int, workers: int, cdc_worker: bool) -> list:
    """The processes of one machine's platform, in start order (see `platform up`)."""
    from resources.executor import CELERY_QUEUES
    from tooling.supervisor import Service

    py = sys.executable
    bindir = os.path.dirname(py)
    services = [
        Service(
            "dagster",
            [os.path.join(bindir, "dg"), "dev", "-w", "workspace.yaml", "-p", str(port)]
            + ["-h", "0.0.0.0"],
            essential=True,
            grace_s=20.0,
        ),
        Service("messaging-webhook", [py, "-m", "messaging.webhook"]),
        Service("notion-webhook", [py, "-m", "consultation_backup.webhook"]),
    ]
    if cdc_worker:
        # One runner per target, chosen by configuration (GFX_CDC_RUNNER): the pgoutput worker
        # or the real Debezium engine; either holds the slot lease.
        if os.environ.get("GFX_CDC_RUNNER", "pgoutput").strip().lower() == "debezium":
            cdc = Service("gfx-cdc-debezium", [py, "-m", "gfx_sync.cdc.debezium_engine", "run"])
        else:
            cdc = Service("gfx-cdc-worker", [py, "-m", "gfx_sync.cdc", "worker"])
        services.append(cdc)
    services.append(Service("gfx-listener", [os.path.join(bindir, "gfx-sync"), "listen"]))
    for n in range(1, workers + 1):
        services.append(
            Service(
                f"celery-worker-{n}",
                [py, "-m", "celery", "-A", "resources.celery_worker", "worker"]
                + ["-l", "warning", "-c", "1", "-n", f"worker{n}@%h"]
                + ["-Q", ",".join(CELERY_QUEUES)],
                grace_s=30.0,
            )
        )
    return services


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())

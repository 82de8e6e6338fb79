"""``platform``: the shared command line (services, migrations, demo materialization).

Each domain has its own command (``consultation-backup``, ``gfx-sync``, ``messaging``) for
its verbs; this one owns what they share.
"""

from __future__ import annotations

import os
import sys

import typer
from rich.console import Console
from rich.table import Table

from resources.environment import apply_local_defaults, current_environment
from resources.errors import PlatformError
from resources.migrations import MIGRATION_SETS, applicable, apply_migrations, sets_named, status

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
    apply_local_defaults()


@app.command("env")
def env_command() -> None:
    """Say which environment this is (PLATFORM_ENV)."""
    console.print(current_environment())


@services_app.command("ensure")
def services_ensure() -> None:
    """Start the local servers if stopped, set wal_level=logical, create databases and the reader user."""
    from tooling.services import ensure_all

    try:
        ensure_all()
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
) -> None:
    """Materialize every asset of every code location once (recorded in DAGSTER_HOME)."""
    from tooling.materialize import materialize_workspace

    ok = materialize_workspace(workspace, log=console.print)
    if not ok:
        raise typer.Exit(1)


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())

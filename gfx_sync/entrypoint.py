"""What every gfx_sync command line does first and last: local defaults, then one typer
command run to an exit code."""

from __future__ import annotations

import click
import typer


def apply_local_defaults() -> None:
    """Fill unset variables with the local defaults (a no-op outside the local environment)."""
    try:
        from tooling.local_env import apply_local_defaults as apply
    except ImportError:  # before the local-environment helper moved to tooling
        from resources.environment import apply_local_defaults as apply
    apply()


def run(app: typer.Typer, argv: list[str] | None, prog_name: str) -> int:
    """Run ``app`` on ``argv`` after the local defaults; the command's exit code (2 for bad
    arguments, 0 for ``--help``)."""
    apply_local_defaults()
    try:
        code = app(args=argv, prog_name=prog_name, standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:  # --help
        return exc.exit_code
    return code if isinstance(code, int) else 0

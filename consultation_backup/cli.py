"""``python -m consultation_backup.cli``: conflicts, fallback lookups, consistency and restore.

    conflicts list [--all]                       open (or all) conflicts
    conflicts resolve ID --use notion|supabase   apply one side and close the conflict
    lookup [--customer-id X] [--name N] [--phone P] [--limit 100] [--no-consultations]
    consistency (--customer-id X | --consultation-id X_NNN)
    restore [--customer-id X ...] [--consultation-id X_NNN ...] [--page-id P ...]
            [--as-of ISO] [--apply] [--overwrite]   dry run unless --apply
    purge retention --older-than-days N [--apply]  old versions and their images
    purge customer X [--apply] [--reason R]        erasure of one customer

The commands use the shared resource instances (``resources.shared``), resolved from the
environment contract after the local defaults are applied (locally only).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import click
import typer

from consultation_backup.conflicts import list_conflicts, resolve_conflict, set_strategy
from consultation_backup.lookup import DEFAULT_LOOKUP_LIMIT, ConsultationReader
from consultation_backup.transform import SEOUL
from resources.environment import apply_local_defaults
from resources.http import set_wait_reporter
from resources.notion import NotionResource
from resources.postgres import PostgresResource

APPLICATION_NAME = "consultation-cli"
# few retries, so a lookup falls back to the backup quickly when Notion is down
CLI_NOTION_ATTEMPTS = 2

app = typer.Typer(
    help="Consultation backup: conflicts, fallback lookups, consistency, restore and purges.",
    no_args_is_help=True,
    add_completion=False,
)
conflicts_app = typer.Typer(
    help="List or resolve sync conflicts (manual strategy).", no_args_is_help=True
)
app.add_typer(conflicts_app, name="conflicts")
purge_app = typer.Typer(
    help="Explicit, logged purges of history: by retention, or one customer (erasure).",
    no_args_is_help=True,
)
app.add_typer(purge_app, name="purge")


class SideChoice(StrEnum):
    notion = "notion"
    supabase = "supabase"


@app.callback()
def _entry() -> None:
    apply_local_defaults()


def _print(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=2, default=str))


def _db() -> PostgresResource:
    """The shared Supabase database resource, resolved from the environment."""
    from resources.shared import supabase_db

    resolved: PostgresResource = supabase_db.process_config_and_initialize()
    return resolved.model_copy(update={"application_name": APPLICATION_NAME})


def _reader() -> ConsultationReader:
    """A reader on the shared Notion and database resources and the domain's settings."""
    from consultation_backup.settings import consultation_settings
    from resources.shared import notion

    resolved: NotionResource = notion.process_config_and_initialize()
    settings = consultation_settings.process_config_and_initialize()
    return ConsultationReader(
        resolved.model_copy(update={"max_attempts": CLI_NOTION_ATTEMPTS}),
        _db(),
        settings.customers_database_id,
        settings.consultations_database_id,
    )


@conflicts_app.command("list")
def conflicts_list(
    include_resolved: bool = typer.Option(False, "--all", help="include resolved conflicts"),
) -> None:
    """Open (or all) conflicts as JSON."""
    rows = list_conflicts(_db(), include_resolved)
    _print(rows)
    print(f"{len(rows)} conflict(s)", file=sys.stderr)


@conflicts_app.command("resolve")
def conflicts_resolve(
    conflict_id: int = typer.Argument(..., help="consultation_sync_conflicts.id"),
    use: SideChoice = typer.Option(..., "--use", help="the side to keep"),
    by: str = typer.Option("cli", "--by", envvar="USER", help="who resolved it"),
) -> None:
    """Apply one side and close the conflict (``notion``: the page as Notion has it now)."""
    side = "notion" if use is SideChoice.notion else "supabase"
    notion = _reader().notion if side == "notion" else None
    _print(resolve_conflict(_db(), conflict_id, side, by, notion=notion).as_dict())


@conflicts_app.command("strategy")
def conflicts_strategy(
    table: str = typer.Argument(..., help="consultation_customers or consultation_records"),
    strategy: str = typer.Argument(..., help="notion_wins, latest_wins or manual"),
    by: str = typer.Option("cli", "--by", envvar="USER", help="who changed it"),
) -> None:
    """Store a table's conflict strategy in Supabase: every later run uses it."""
    set_strategy(_db(), table, strategy, by)  # type: ignore[arg-type]  # validated inside
    _print({"table": table, "conflict_strategy": strategy})


@app.command("lookup")
def lookup(
    customer_id: str | None = typer.Option(None, "--customer-id"),
    name: str | None = typer.Option(None, "--name"),
    phone: str | None = typer.Option(None, "--phone"),
    no_consultations: bool = typer.Option(False, "--no-consultations"),
    limit: int = typer.Option(DEFAULT_LOOKUP_LIMIT, "--limit", help="at most this many customers"),
) -> None:
    """Find customers: Notion first, the backup when Notion is down."""
    result = _reader().find_customers(
        customer_id=customer_id,
        name=name,
        phone=phone,
        with_consultations=not no_consultations,
        limit=limit,
    )
    _print(
        {
            "source": result.source,
            "degraded": result.degraded,
            "reason": result.reason,
            "staleness_s": result.staleness_s,
            "truncated": result.truncated,
            "invalid_pages": result.invalid_pages,
            "customers": result.customers,
        }
    )


@app.command("consistency")
def consistency(
    customer_id: str | None = typer.Option(None, "--customer-id"),
    consultation_id: str | None = typer.Option(None, "--consultation-id"),
) -> None:
    """Compare one customer or consultation in Notion and the backup; exit 1 if they differ."""
    report = _reader().validate_consistency(
        customer_id=customer_id, consultation_id=consultation_id
    )
    _print(report.__dict__)
    if not report.consistent:
        raise typer.Exit(1)


def _as_of(text: str | None) -> datetime | None:
    """An ISO timestamp; without an offset it is read in Asia/Seoul (the pharmacy's clock)."""
    if not text:
        return None
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=SEOUL)


@app.command("restore")
def restore_cmd(
    customer_id: list[str] = typer.Option(
        [], "--customer-id", help="these customers with all their consultations"
    ),
    consultation_id: list[str] = typer.Option([], "--consultation-id", help="single pages"),
    page_id: list[str] = typer.Option([], "--page-id", help="single pages by (former) page id"),
    as_of: str | None = typer.Option(
        None, "--as-of", help="ISO time (default now; no offset = Asia/Seoul)"
    ),
    apply: bool = typer.Option(False, "--apply", help="really write to Notion (default: dry run)"),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="also overwrite pages that exist but differ"
    ),
) -> None:
    """Restore Notion to the backup's state as of a time: trashed pages restored from the
    trash, gone pages recreated; no selection means the whole database. Dry run by default."""
    from consultation_backup.restore import restore

    reader = _reader()
    report = restore(
        reader.notion,
        reader.db,
        customers_database_id=reader.customers_db,
        consultations_database_id=reader.consultations_db,
        as_of=_as_of(as_of),
        dry_run=not apply,
        overwrite=overwrite,
        customer_ids=customer_id or None,
        consultation_ids=consultation_id or None,
        page_ids=page_id or None,
        run_id=f"cli:restore:{datetime.now(UTC).isoformat()}",
        log=lambda m: print(m, file=sys.stderr),
        storage=_storage(),
    )
    _print(report.as_dict())


def _storage() -> Any:
    from resources.shared import supabase_storage

    return supabase_storage.process_config_and_initialize()


def _purged(run: Callable[[], Any]) -> None:
    from consultation_backup.purge import PurgeRefused

    try:
        report = run()
    except PurgeRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    _print(report.as_dict())
    if not report.applied:
        print("dry run: nothing removed (add --apply)", file=sys.stderr)


@purge_app.command("retention")
def purge_retention_cmd(
    older_than_days: int = typer.Option(
        ..., "--older-than-days", min=1, help="versions that ended more than N days ago"
    ),
    apply: bool = typer.Option(False, "--apply", help="really remove (default: dry run)"),
    by: str = typer.Option("cli", "--by", envvar="USER", help="who asked"),
    reason: str | None = typer.Option(None, "--reason"),
) -> None:
    """Remove versions (and their versions/ images) older than the retention period."""
    from consultation_backup.purge import purge_retention

    _purged(
        lambda: purge_retention(
            _db(),
            _storage(),
            older_than=timedelta(days=older_than_days),
            apply=apply,
            requested_by=by,
            reason=reason,
        )
    )


@purge_app.command("customer")
def purge_customer_cmd(
    customer_id: str = typer.Argument(..., help="the 5-digit customer id"),
    apply: bool = typer.Option(False, "--apply", help="really erase (default: dry run)"),
    by: str = typer.Option("cli", "--by", envvar="USER", help="who asked"),
    reason: str | None = typer.Option(None, "--reason", help="e.g. the request's reference"),
) -> None:
    """Erase one customer (right to erasure): rows, history, conflicts, quarantine entries and
    every Storage object; logged without the personal data."""
    from consultation_backup.purge import erase_customer

    _purged(
        lambda: erase_customer(
            _db(), _storage(), customer_id=customer_id, apply=apply, requested_by=by, reason=reason
        )
    )


def main(argv: list[str] | None = None) -> int:
    """The console script: run one command, return its exit code (2 for a usage error, an
    unknown conflict or an invalid argument)."""
    set_wait_reporter(_report_wait)
    # the client's own per-request warnings would repeat what the progress lines say (it sets
    # its logger's level itself when a client is built, so the logger is switched off instead)
    logging.getLogger("notion_client").disabled = True
    try:
        code = app(args=argv if argv is not None else sys.argv[1:], standalone_mode=False)
    except (LookupError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a command line ends with one line, not a traceback
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 1
    return code if isinstance(code, int) else 0


def _one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (vendor errors can span lines), at most 300 chars."""
    text = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {text}"[:300]


def _report_wait(
    service: str, seconds: float, attempt: int, attempts: int, exc: BaseException | None
) -> None:
    """Progress while a command waits out a 429 (Retry-After) or another transient failure."""
    status = getattr(exc, "status", None)
    why = "rate limited (429)" if status == 429 else _one_line(exc) if exc else "retrying"
    print(
        f"{service}: {why}; waiting {seconds:.1f} s before attempt {attempt + 1}/{attempts}",
        file=sys.stderr,
        flush=True,
    )


if __name__ == "__main__":
    raise SystemExit(main())

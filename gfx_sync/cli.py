"""``gfx-sync`` / ``python -m gfx_sync.cli``: sync, restore, drift and health from a shell.

    gfx-sync sync [--table T ...] [--reconcile] [--full-hash]
                  [--since 2026-11-01 --until 2026-11-08]
    gfx-sync restore --table gfx_hands [--from external|supabase] [--dry-run]
    gfx-sync drift
    gfx-sync health
    gfx-sync pause [--table T ...] [--reason TEXT]   # batch, reconcile, two-way skip; CDC parks
    gfx-sync resume [--table T ...]                  # parked CDC changes applied in order
    gfx-sync listen [--poll-interval 1.0]            # event-driven overrides / render queue
    gfx-sync schema dump | check                     # gfx_sync/current_schema_dump.sql
    gfx-sync fdw-setup   # postgres_fdw link for the SQL function restore_gfx_from_external()

The commands use the shared resource instances (``resources.shared``: ``SUPABASE_DB_URL``,
``GFX_SOURCE_DB_URL``), resolved after the local defaults are applied.
Exit codes: 0 ok, 1 drift found / sync failed, 2 bad arguments.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime, time, timedelta

import click
import typer

from gfx_sync.entrypoint import run
from gfx_sync.specs import SPECS, SPECS_BY_TABLE
from resources.postgres import PostgresResource

app = typer.Typer(
    name="gfx-sync",
    help="gfx_sync: sync, restore, drift and health of the external PostgreSQL tables.",
    no_args_is_help=True,
    add_completion=False,
)
_TABLES = click.Choice(sorted(SPECS_BY_TABLE))


def _databases() -> tuple[PostgresResource, PostgresResource]:
    """(source, target): the shared instances with their ``EnvVar`` values resolved, under this
    command line's own application names (operators and the crash test find its sessions by
    them in ``pg_stat_activity``)."""
    from resources.shared import gfx_source_db, supabase_db

    source = gfx_source_db.process_config_and_initialize()
    target = supabase_db.process_config_and_initialize()
    return (
        source.model_copy(update={"application_name": "gfx-sync-cli-source"}),
        target.model_copy(update={"application_name": "gfx-sync-cli"}),
    )


def _day(text: str) -> datetime:
    return datetime.combine(date.fromisoformat(text), time(0), tzinfo=UTC)


def _run_id() -> str:
    return f"cli-{os.getpid()}"


@app.command("sync")
def sync(
    table: list[str] | None = typer.Option(None, click_type=_TABLES, help="repeatable"),
    reconcile: bool = typer.Option(False, help="also run the key-range hash reconciliation"),
    full_hash: bool = typer.Option(False, help="reconcile on every column, not (key, updated_at)"),
    since: str | None = typer.Option(None, help="window start day (UTC, inclusive)"),
    until: str | None = typer.Option(None, help="window end day (UTC, exclusive)"),
    overlap_minutes: float = typer.Option(10.0),
) -> int:
    """Sync tables now (incremental, or a --since/--until window)."""
    from gfx_sync.sync import sync_table

    if bool(since) != bool(until):
        raise click.UsageError("--since and --until go together (days, UTC, until exclusive)")
    window = (_day(since), _day(until)) if since and until else None
    source, target = _databases()
    failed = 0
    for name in table or [s.table for s in SPECS]:
        try:
            res = sync_table(
                source,
                target,
                SPECS_BY_TABLE[name],
                window=window,
                reconcile=reconcile,
                full_hash=full_hash,
                overlap=timedelta(minutes=overlap_minutes),
                run_id=_run_id(),
            )
            line = {"table": name, "status": res.status, **res.metadata()}
        except Exception as exc:  # noqa: BLE001 - report every table, fail at the end
            failed += 1
            line = {"table": name, "status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(line, ensure_ascii=False))
    return 1 if failed else 0


@app.command("restore")
def restore(
    table: str = typer.Option(..., click_type=_TABLES),
    from_side: str | None = typer.Option(
        None, "--from", click_type=click.Choice(["external", "supabase"])
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="only report the counts that would change"
    ),
) -> int:
    """Re-copy a table from its authoritative side (safety copy first)."""
    from gfx_sync.restore import restore_table

    source, target = _databases()
    rep = restore_table(
        source,
        target,
        SPECS_BY_TABLE[table],
        from_side=from_side,
        dry_run=dry_run,
        run_id=_run_id(),
    )
    print(json.dumps(rep.as_dict(), ensure_ascii=False, default=str))
    return 0


@app.command("drift")
def drift() -> int:
    """Compare source/target columns and the migrations with the live schema."""
    from gfx_sync.schema import drift_report

    source, target = _databases()
    with source.connection() as sc, target.connection() as tc:
        rep = drift_report(sc, tc)
        sc.rollback()  # read-only: return both connections idle
        tc.rollback()
    for line in rep.lines():
        print(line)
    print("schema: no drift" if rep.ok else f"schema drift: {len(rep.lines())} problem(s)")
    return 0 if rep.ok else 1


@app.command("health")
def health() -> int:
    """Notify about unhealthy tables, then retry failed syncs; print v_sync_dashboard."""
    from gfx_sync.health import run_health

    _, target = _databases()
    report = run_health(target)
    print(f"notified: {report.notified}  retried: {report.retried}")
    for r in target.fetch_all(
        "SELECT entity_type, method, health_status, status, lag_seconds, consecutive_failures,"
        " records_synced, records_failed FROM v_sync_dashboard"
    ):
        lag = "-" if r["lag_seconds"] is None else f"{float(r['lag_seconds']):.0f}s"
        print(
            f"{r['entity_type']:<18} {r['method']:<8} {r['health_status']:<9} {r['status']:<8}"
            f" lag={lag:<8} failures={r['consecutive_failures']}"
            f" synced={r['records_synced']} failed={r['records_failed']}"
        )
    return 0


@app.command("pause")
def pause(
    table: list[str] | None = typer.Option(
        None, click_type=_TABLES, help="repeatable; default all"
    ),
    reason: str = typer.Option("paused by operator", help="shown on the dashboard"),
) -> int:
    """Pause tables: batch, reconciliation and two-way skip them; CDC parks their changes."""
    from gfx_sync.pause import pause_tables

    _, target = _databases()
    done = pause_tables(target, table, reason=reason)
    print("paused: " + (", ".join(done) or "nothing (already paused)"))
    return 0


@app.command("resume")
def resume(
    table: list[str] | None = typer.Option(
        None, click_type=_TABLES, help="repeatable; default all"
    ),
) -> int:
    """Resume paused tables: apply their parked CDC changes in order, mark them pending."""
    from gfx_sync.pause import resume_tables

    _, target = _databases()
    rep = resume_tables(target, table)
    print(
        "resumed: "
        + (", ".join(rep.tables) or "nothing (not paused)")
        + f"; parked changes applied: {rep.parked_applied}"
    )
    return 0


@app.command("listen")
def listen(
    poll_interval: float = typer.Option(1.0, help="seconds between checks of the external side"),
) -> int:
    """Run the event-driven listener (overrides, profile images, cue sheets, render queue)
    until SIGTERM/SIGINT: Supabase changes by LISTEN, external changes by a short poll."""
    import signal
    import threading

    from gfx_sync.listener import Listener

    source, target = _databases()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"listening (poll every {poll_interval} s); stop with SIGTERM", flush=True)
    stats = Listener(source, target, poll_interval_s=poll_interval).run(stop)
    print(json.dumps({"exchanges": stats.exchanges, "errors": stats.errors}), flush=True)
    return 0


schema_app = typer.Typer(
    help="The committed schema dump (gfx_sync/current_schema_dump.sql).", no_args_is_help=True
)
app.add_typer(schema_app, name="schema")


@schema_app.command("dump")
def schema_dump() -> int:
    """Write current_schema_dump.sql from the migrations (a scratch database on the target's
    server, dropped afterwards)."""
    from gfx_sync.schema_dump import DUMP_PATH, write_dump

    _, target = _databases()
    n = write_dump(target.dsn)
    print(f"wrote {DUMP_PATH.name}: {n} objects")
    return 0


@schema_app.command("check")
def schema_check() -> int:
    """Compare the migrations (fresh database), the committed dump and the live target; exit 1
    on any difference."""
    from gfx_sync.schema_dump import check

    _, target = _databases()
    result = check(target.dsn)
    for line in result.lines():
        print(line)
    print("schema: dump, migrations and live agree" if result.ok else "schema: differences")
    return 0 if result.ok else 1


@app.command("fdw-setup")
def fdw_setup() -> int:
    """Link Supabase to the external DB (postgres_fdw server external_db) for the SQL function
    restore_gfx_from_external()."""
    from gfx_sync.fdw import setup_external_fdw

    source, target = _databases()
    created = setup_external_fdw(target, source.dsn)
    print("foreign tables: " + ", ".join(created))
    print(
        "restore with: SELECT restore_gfx_from_external();"
        "  -- on Supabase (safety copy first, one transaction)"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """The console script ``gfx-sync``: run one command, return its exit code."""
    try:
        return run(app, argv, "gfx-sync")
    finally:
        from resources.postgres import close_all_pools

        close_all_pools()


if __name__ == "__main__":
    raise SystemExit(main())

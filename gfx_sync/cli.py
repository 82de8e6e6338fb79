"""``python -m gfx_sync.cli``: sync, restore, drift and health from a shell.

    python -m gfx_sync.cli sync [--table T ...] [--reconcile] [--full-hash] [--since 2026-11-01 --until 2026-11-08]
    python -m gfx_sync.cli restore --table gfx_hands [--from external|supabase] [--dry-run]
    python -m gfx_sync.cli drift
    python -m gfx_sync.cli health
    python -m gfx_sync.cli fdw-setup   # postgres_fdw link for the seed's SQL restore_gfx_from_external()

Connections come from SUPABASE_DB_URL and GFX_SOURCE_DB_URL (local defaults when PLATFORM_ENV=local).
Exit codes: 0 ok, 1 drift found / sync failed, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, date, datetime, time, timedelta

from gfx_sync.specs import SPECS, SPECS_BY_TABLE


def _resources():
    from resources.environment import apply_local_defaults
    from resources.postgres import PostgresResource

    apply_local_defaults()
    return (
        PostgresResource(
            dsn=os.environ["GFX_SOURCE_DB_URL"], application_name="gfx-sync-cli-source"
        ),
        PostgresResource(dsn=os.environ["SUPABASE_DB_URL"], application_name="gfx-sync-cli"),
    )


def _day(text: str) -> datetime:
    return datetime.combine(date.fromisoformat(text), time(0), tzinfo=UTC)


def cmd_sync(args) -> int:
    from gfx_sync.sync import sync_table

    source, target = _resources()
    tables = args.table or [s.table for s in SPECS]
    window = None
    if args.since or args.until:
        if not (args.since and args.until):
            print("--since and --until go together (days, UTC, until exclusive)", file=sys.stderr)
            return 2
        window = (_day(args.since), _day(args.until))
    failed = 0
    for table in tables:
        try:
            res = sync_table(
                source,
                target,
                SPECS_BY_TABLE[table],
                window=window,
                reconcile=args.reconcile,
                full_hash=args.full_hash,
                overlap=timedelta(minutes=args.overlap_minutes),
                run_id=f"cli-{os.getpid()}",
            )
            print(
                json.dumps(
                    {"table": table, "status": res.status, **res.metadata()}, ensure_ascii=False
                )
            )
        except Exception as exc:  # noqa: BLE001 - report every table, fail at the end
            failed += 1
            print(
                json.dumps(
                    {"table": table, "status": "failed", "error": f"{type(exc).__name__}: {exc}"},
                    ensure_ascii=False,
                )
            )
    return 1 if failed else 0


def cmd_restore(args) -> int:
    from gfx_sync.restore import restore_table

    source, target = _resources()
    rep = restore_table(
        source,
        target,
        SPECS_BY_TABLE[args.table],
        from_side=args.from_side,
        dry_run=args.dry_run,
        run_id=f"cli-{os.getpid()}",
    )
    print(json.dumps(rep.as_dict(), ensure_ascii=False, default=str))
    return 0


def cmd_drift(args) -> int:
    from gfx_sync.schema import drift_report

    source, target = _resources()
    with source.connection() as sc, target.connection() as tc:
        rep = drift_report(sc, tc)
        sc.rollback()  # read-only: return both connections idle
        tc.rollback()
    for line in rep.lines():
        print(line)
    print("schema: no drift" if rep.ok else f"schema drift: {len(rep.lines())} problem(s)")
    return 0 if rep.ok else 1


def cmd_health(args) -> int:
    _, target = _resources()
    with target.transaction() as conn:
        retried = conn.execute("SELECT public.retry_failed_syncs()").fetchone()[0]
        conn.execute("SELECT public.check_sync_health_and_notify()")
    print(f"retried: {retried}")
    for r in target.fetch_all(
        "SELECT entity_type, method, health_status, status, lag_seconds, consecutive_failures,"
        " records_synced, records_failed FROM v_sync_dashboard"
    ):
        lag = "-" if r["lag_seconds"] is None else f"{float(r['lag_seconds']):.0f}s"
        print(
            f"{r['entity_type']:<18} {r['method']:<8} {r['health_status']:<9} {r['status']:<8} lag={lag:<8}"
            f" failures={r['consecutive_failures']} synced={r['records_synced']} failed={r['records_failed']}"
        )
    return 0


def cmd_fdw_setup(args) -> int:
    from gfx_sync.fdw import setup_external_fdw

    _, target = _resources()
    created = setup_external_fdw(target, os.environ["GFX_SOURCE_DB_URL"])
    print("foreign tables: " + ", ".join(created))
    print(
        "restore with: SELECT restore_gfx_from_external();  -- on Supabase (safety copy first, one transaction)"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gfx_sync.cli",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    tables = sorted(SPECS_BY_TABLE)
    p = sub.add_parser("sync", help="sync tables now (incremental, or a --since/--until window)")
    p.add_argument("--table", action="append", choices=tables)
    p.add_argument(
        "--reconcile", action="store_true", help="also run the key-range hash reconciliation"
    )
    p.add_argument(
        "--full-hash", action="store_true", help="reconcile on every column, not (key, updated_at)"
    )
    p.add_argument("--since", help="window start day (UTC, inclusive)")
    p.add_argument("--until", help="window end day (UTC, exclusive)")
    p.add_argument("--overlap-minutes", type=float, default=10.0)
    p.set_defaults(fn=cmd_sync)
    p = sub.add_parser(
        "restore", help="re-copy a table from its authoritative side (safety copy first)"
    )
    p.add_argument("--table", required=True, choices=tables)
    p.add_argument("--from", dest="from_side", choices=["external", "supabase"])
    p.add_argument(
        "--dry-run", action="store_true", help="only report the counts that would change"
    )
    p.set_defaults(fn=cmd_restore)
    sub.add_parser(
        "drift", help="compare source/target columns and the migrations with the live schema"
    ).set_defaults(fn=cmd_drift)
    sub.add_parser(
        "health", help="retry failed syncs, notify, print v_sync_dashboard"
    ).set_defaults(fn=cmd_health)
    sub.add_parser(
        "fdw-setup",
        help="link Supabase to the external DB (postgres_fdw server external_db) for the "
        "seed's SQL restore_gfx_from_external()",
    ).set_defaults(fn=cmd_fdw_setup)
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    finally:
        from resources.postgres import close_all_pools

        close_all_pools()


if __name__ == "__main__":
    raise SystemExit(main())

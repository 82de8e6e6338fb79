"""``python -m consultation_backup.cli``: conflicts, fallback lookups, consistency and restore.

    conflicts list [--all]                       open (or all) conflicts
    conflicts resolve ID --use notion|supabase   apply one side and close the conflict
    lookup [--customer-id X] [--name N] [--phone P] [--limit 100]
    consistency (--customer-id X | --consultation-id X_NNN)
    restore [--customer-id X ...] [--apply]      dry run unless --apply

Configuration comes from the environment contract (local defaults in the local environment).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from psycopg.types.json import Jsonb

from consultation_backup.sync import CUSTOMER_COLUMNS, RECORD_COLUMNS
from resources.postgres import PostgresResource


def _db() -> PostgresResource:
    from resources.environment import apply_local_defaults

    apply_local_defaults()
    return PostgresResource(dsn=os.environ["SUPABASE_DB_URL"], application_name="consultation-cli")


def _print(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=2, default=str))


def list_conflicts(db: PostgresResource, include_resolved: bool = False) -> list[dict[str, Any]]:
    where = "" if include_resolved else "WHERE status = 'open'"
    return db.fetch_all(
        f"""SELECT id, entity, business_id, notion_page_id, strategy, differing_fields, notion_updated_at,
                   supabase_updated_at, status, resolution, detected_at, resolved_at
              FROM public.consultation_sync_conflicts {where} ORDER BY detected_at"""
    )


def resolve_conflict(
    db: PostgresResource, conflict_id: int, use: str, resolved_by: str = "cli"
) -> dict[str, Any]:
    """Close a conflict. ``notion``: write the stored Notion version over the backup row;
    ``supabase``: keep the backup row. Either way the row is marked synced again.

    Raises:
        LookupError: no open conflict with this id.
    """
    if use not in ("notion", "supabase"):
        raise ValueError("use must be 'notion' or 'supabase'")
    with db.transaction() as conn:
        row = conn.execute(
            "SELECT entity, notion_page_id, notion_version FROM public.consultation_sync_conflicts"
            " WHERE id = %s AND status = 'open' FOR UPDATE",
            (conflict_id,),
        ).fetchone()
        if row is None:
            raise LookupError(f"no open conflict with id {conflict_id}")
        entity, page_id, notion_version = row
        table = "consultation_customers" if entity == "customer" else "consultation_records"
        if use == "notion":
            columns = CUSTOMER_COLUMNS if entity == "customer" else RECORD_COLUMNS
            values = {
                c: notion_version.get(c)
                for c in columns
                if c not in ("notion_page_id", "customer_id") and c in notion_version
            }
            if entity == "customer" and "customer_id" in notion_version:
                values["customer_id"] = notion_version["customer_id"]
            assignments = ", ".join(f"{c} = %s" for c in values)
            params = [
                Jsonb(v) if c in ("face_embedding", "google_drive_urls") and v is not None else v
                for c, v in values.items()
            ]
            conn.execute(
                f"UPDATE public.{table} SET {assignments}, sync_status = 'synced', synced_at = now()"
                " WHERE notion_page_id = %s",
                (*params, page_id),
            )
        else:
            conn.execute(
                f"UPDATE public.{table} SET sync_status = 'synced', synced_at = now() WHERE notion_page_id = %s",
                (page_id,),
            )
        conn.execute(
            "UPDATE public.consultation_sync_conflicts SET status = 'resolved', resolution = %s,"
            " resolved_by = %s, resolved_at = now() WHERE id = %s",
            (use, resolved_by, conflict_id),
        )
    return {"id": conflict_id, "entity": entity, "notion_page_id": page_id, "resolution": use}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m consultation_backup.cli",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    conflicts = sub.add_parser("conflicts", help="list or resolve sync conflicts (manual strategy)")
    csub = conflicts.add_subparsers(dest="action", required=True)
    clist = csub.add_parser("list")
    clist.add_argument("--all", action="store_true", help="include resolved conflicts")
    cres = csub.add_parser("resolve")
    cres.add_argument("conflict_id", type=int)
    cres.add_argument("--use", choices=["notion", "supabase"], required=True)
    cres.add_argument("--by", default=os.environ.get("USER", "cli"))
    look = sub.add_parser(
        "lookup", help="find customers: Notion first, the backup when Notion is down"
    )
    look.add_argument("--customer-id")
    look.add_argument("--name")
    look.add_argument("--phone")
    look.add_argument("--no-consultations", action="store_true")
    look.add_argument(
        "--limit", type=int, default=100, help="at most this many customers (default 100)"
    )
    cons = sub.add_parser(
        "consistency", help="compare one customer or consultation in Notion and the backup"
    )
    group = cons.add_mutually_exclusive_group(required=True)
    group.add_argument("--customer-id")
    group.add_argument("--consultation-id")
    rest = sub.add_parser(
        "restore", help="recreate missing Notion pages from the backup (dry run by default)"
    )
    rest.add_argument("--customer-id", action="append", default=[])
    rest.add_argument("--apply", action="store_true", help="really create pages (default: dry run)")
    args = parser.parse_args(argv)

    try:
        if args.command == "conflicts":
            db = _db()
            if args.action == "list":
                rows = list_conflicts(db, args.all)
                _print(rows)
                print(f"{len(rows)} conflict(s)", file=sys.stderr)
            else:
                _print(resolve_conflict(db, args.conflict_id, args.use, args.by))
            return 0
        from consultation_backup.lookup import reader_from_env

        reader = reader_from_env()
        if args.command == "lookup":
            result = reader.find_customers(
                customer_id=args.customer_id,
                name=args.name,
                phone=args.phone,
                with_consultations=not args.no_consultations,
                limit=args.limit,
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
            return 0
        if args.command == "consistency":
            report = reader.validate_consistency(
                customer_id=args.customer_id, consultation_id=args.consultation_id
            )
            _print(report.__dict__)
            return 0 if report.consistent else 1
        if args.command == "restore":
            from consultation_backup.restore import restore

            report = restore(
                reader.notion,
                reader.db,
                customers_database_id=reader.customers_db,
                consultations_database_id=reader.consultations_db,
                dry_run=not args.apply,
                customer_ids=args.customer_id or None,
                log=lambda m: print(m, file=sys.stderr),
            )
            _print(report.as_dict())
            return 0
    except (LookupError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    raise SystemExit(main())

"""consultation_backup history benchmark (issue 10 §1 "History costs little").

Figures:

1. **nightly run with 1% changed pages, with history vs without**: the full customer read and
   the full consultation window (what the nightly comparison reads), after 1% of the pages were
   edited, into a database with the history triggers and into an identical one whose triggers
   were dropped (the reference). Both runs read the same Notion state (the stand-in's query
   cache cleared before each); rounds alternate which database goes first. The Notion
   stand-in is not throttled here, so the database side is not hidden behind the 3 requests/s
   bound. Target <= 1.1.
2. **writing the changed rows alone** (the same 1% rewritten through the sync's write path),
   with vs without history: the trigger's own cost, no Notion reads around it (informational).
3. **restore of one customer as of a past time** (the customer and their consultations, pages
   overwritten with the versions from before the edits), with the stand-in enforcing 3
   requests/s and the client's default throttle, against the budget 5 s + the Notion requests
   it made / 3 per s. Target <= 1.0.

Run alone: ``python -m benchmarks.bench_consultation_history --customers 1000``.
"""

from __future__ import annotations

import os
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import typer

from benchmarks.harness import BenchContext, Figure

if TYPE_CHECKING:
    from resources.notion import NotionResource
    from resources.postgres import PostgresResource

NAME = "consultation_history"
SCALE_CUSTOMERS = {"tiny": 200, "small": 1000, "demo": 1000, "medium": 2000, "large": 5000}
SEED = 20261203
ROUNDS = 6  # even: each database goes first equally often
CHANGED_SHARE = 0.01


def _drop_history_triggers(db: PostgresResource) -> None:
    for table in ("consultation_customers", "consultation_records", "consultation_image_objects"):
        db.execute(f"DROP TRIGGER IF EXISTS keep_version ON public.{table}")


def _nightly(notion: NotionResource, db: PostgresResource) -> float:
    from consultation_backup.customers import sync_customers
    from consultation_backup.records import sync_records
    from resources.environment import NOTION_CONSULTATIONS_DB_LOCAL, NOTION_CUSTOMERS_DB_LOCAL

    started = time.perf_counter()
    sync_customers(notion, db, NOTION_CUSTOMERS_DB_LOCAL, full=True)
    sync_records(
        notion,
        db,
        NOTION_CONSULTATIONS_DB_LOCAL,
        datetime(2020, 1, 1).date(),
        datetime.now(UTC).date() + timedelta(days=2),
    )
    return time.perf_counter() - started


def _edit_share(ws: Any, round_no: int) -> list[str]:
    """Edit 1% of the customer and consultation pages directly in the stand-in's workspace."""
    edited: list[str] = []
    for ds in ws.data_sources.values():
        pages = [p for p in ds.pages.values() if not p["in_trash"]]
        step = max(1, int(1 / CHANGED_SHARE))
        for page in pages[round_no % step :: step]:
            note = f"야간 편집 {round_no}"
            ws.update_page(
                page["id"],
                {"properties": {"특이사항": {"rich_text": [{"text": {"content": note}}]}}},
            )
            edited.append(page["id"])
    return edited


def _rewrite_changed(db: PostgresResource, page_ids: list[str], marker: str) -> float:
    """The sync's write path alone for the given pages' rows, each with one field changed."""
    from consultation_backup.writes import CUSTOMERS, RECORDS, Tally, WriteScope, write_rows

    started = time.perf_counter()
    with db.transaction() as conn:
        scope = WriteScope(conn, "notion_wins", "bench", Tally())
        for spec in (CUSTOMERS, RECORDS):
            rows = db.fetch_all(
                f"SELECT * FROM public.{spec.table} WHERE notion_page_id = ANY(%s)", (page_ids,)
            )
            values = [
                {**{c: r[c] for c in spec.columns}, "special_note": f"{marker} {i}"}
                for i, r in enumerate(rows)
            ]
            write_rows(scope, spec, values, {})
    return time.perf_counter() - started


def _busiest_customer(db: PostgresResource) -> tuple[str, list[str]]:
    """The customer with the most consultations, and the page ids of it and them."""
    customer = db.fetch_value(
        "SELECT c.customer_id FROM consultation_customers c JOIN consultation_records r"
        " ON r.customer_id = c.id WHERE NOT c.is_deleted AND NOT r.is_deleted"
        " GROUP BY c.customer_id ORDER BY count(*) DESC, c.customer_id LIMIT 1"
    )
    pages = db.fetch_all(
        "SELECT c.notion_page_id AS p FROM consultation_customers c WHERE customer_id = %s"
        " UNION ALL SELECT r.notion_page_id FROM consultation_records r JOIN"
        " consultation_customers c ON c.id = r.customer_id"
        " WHERE c.customer_id = %s AND NOT r.is_deleted",
        (customer, customer),
    )
    return customer, [r["p"] for r in pages]


def _restore_one(
    notion: NotionResource, db: PostgresResource, customer: str, as_of: datetime
) -> dict[str, Any]:
    from consultation_backup.restore import restore
    from resources.environment import NOTION_CONSULTATIONS_DB_LOCAL, NOTION_CUSTOMERS_DB_LOCAL

    before = notion.caller.stats["requests"]
    started = time.perf_counter()
    report = restore(
        notion,
        db,
        customers_database_id=NOTION_CUSTOMERS_DB_LOCAL,
        consultations_database_id=NOTION_CONSULTATIONS_DB_LOCAL,
        as_of=as_of,
        dry_run=False,
        overwrite=True,
        customer_ids=[customer],
        log=lambda _m: None,
    )
    return {
        "seconds": time.perf_counter() - started,
        "requests": notion.caller.stats["requests"] - before,
        "pages": report.customers_in_backup + report.consultations_in_backup,
        "changed": len(report.planned),
    }


def bench(ctx: BenchContext) -> list[Figure]:
    from benchmarks.bench_consultation import _drop_db, _fresh_db
    from resources.notion import NotionResource
    from resources.postgres import PostgresResource
    from standins import notion as notion_emu
    from standins.base import EmulatorServer

    customers = int(ctx.extra.get("customers") or SCALE_CUSTOMERS.get(ctx.scale, 1000))
    app = notion_emu.create_app(SEED, customers, rate_per_s=0)
    server = EmulatorServer(app).start()
    ws = app.workspace  # type: ignore[attr-defined]
    history_url, plain_url = _fresh_db(""), _fresh_db("")
    try:
        notion = NotionResource(token="ntn_bench_token", base_url=server.url, rate_per_s=0.0)
        hist = PostgresResource(dsn=history_url, application_name="bench-history")
        plain = PostgresResource(dsn=plain_url, application_name="bench-history")
        _drop_history_triggers(plain)
        for db in (hist, plain):
            _nightly(notion, db)  # the initial backup (untimed)
        as_of = hist.fetch_value("SELECT clock_timestamp()")
        nightly: dict[str, list[float]] = {"history": [], "plain": []}
        writes: dict[str, list[float]] = {"history": [], "plain": []}
        edited: list[str] = []
        for round_no in range(ROUNDS):
            edited = _edit_share(ws, round_no)
            order = [("history", hist), ("plain", plain)]
            for name, db in order if round_no % 2 == 0 else order[::-1]:
                # the stand-in caches query results per data source version: whichever run
                # went second would read from the cache, so each starts cold
                ws._query_cache.clear()
                nightly[name].append(_nightly(notion, db))
            for name, db in order if round_no % 2 else order[::-1]:
                writes[name].append(_rewrite_changed(db, edited, f"bench {round_no}"))
        versions = hist.fetch_value(
            "SELECT (SELECT count(*) FROM consultation_customers_history)"
            " + (SELECT count(*) FROM consultation_records_history)"
        )
        # someone overwrites a field on one customer and all their consultations; the backup
        # follows; the restore brings every page back to its state before the edits
        customer, page_ids = _busiest_customer(hist)
        for pid in page_ids:
            text = [{"text": {"content": "실수로 덮어쓴 메모"}}]
            ws.update_page(pid, {"properties": {"특이사항": {"rich_text": text}}})
        _nightly(notion, hist)
        # restore at Notion's real pace: the stand-in enforces 3/s, the client its default
        ws.rate_per_s = notion_emu.DEFAULT_RATE_PER_S
        paced = NotionResource(token="ntn_bench_restore", base_url=server.url)
        restored = _restore_one(paced, hist, customer, as_of)
    finally:
        server.stop()
        _drop_db(history_url)
        _drop_db(plain_url)
    pages = sum(len(ds.pages) for ds in ws.data_sources.values())
    budget = 5.0 + restored["requests"] / 3.0
    return [
        Figure(
            NAME,
            "nightly run s, 1% pages changed, with history",
            statistics.median(nightly["history"]),
            statistics.median(nightly["plain"]),
            "the same run without history (triggers dropped)",
            higher_is_better=False,
            note=f"{pages} pages, {len(edited)} changed per round, {ROUNDS} rounds (median); "
            f"{versions} versions kept; target <= 1.1",
        ),
        Figure(
            NAME,
            "writing the changed rows alone s, with history",
            statistics.median(writes["history"]),
            statistics.median(writes["plain"]),
            "the same writes without history",
            higher_is_better=False,
            note=f"{len(edited)} rows rewritten per round through writes.write_rows",
        ),
        Figure(
            NAME,
            "restore one customer as of a past time s",
            restored["seconds"],
            budget,
            "5 s + Notion requests made / 3 per s",
            higher_is_better=False,
            note=f"{restored['pages']} pages, {restored['changed']} overwritten, "
            f"{restored['requests']} Notion requests at 3/s; target <= 1.0",
        ),
    ]


app = typer.Typer(add_completion=False)


@app.command()
def main(customers: int = typer.Option(1000, help="customers in the stand-in dataset")) -> None:
    """Nightly run with and without history, and a point-in-time restore of one customer."""
    from resources.environment import apply_local_defaults

    apply_local_defaults()
    os.environ.setdefault("SUPABASE_SERVICE_ROLE_KEY", "local-service-role-key")
    ctx = BenchContext("", "", "", "custom", extra={"customers": customers})
    for f in bench(ctx):
        ratio = f"{f.ratio:.2f}" if f.ratio is not None else "-"
        print(f"{f.metric}: {f.value:.2f} vs {f.reference_name} {f.reference:.2f} -> {ratio}")
        print(f"    {f.note}")


if __name__ == "__main__":
    app()

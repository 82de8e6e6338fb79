"""consultation_backup benchmark: full backup of N customers (about 4.5 consultations and 2 images
per customer) from the stand-ins, with the Notion stand-in enforcing 3 requests/s, then an
incremental pass after 10 edits.

Targets (10,000 customers, ~50,000 consultations, ~20,000 images): wall time within 1.2x
of the rate-limit bound (Notion requests needed / 3 per second), zero 429s answered, peak
memory under 300 MB and flat in the data size; an incremental run after 10 edits makes at most
a handful of Notion requests. Figures:

1. **full backup** wall seconds (customers, then the records+images step over every date the way
   a single-run range backfill runs it: one windowed query, images copied while Notion reads wait
   on the rate limit) vs the rate-limit bound computed from the requests the run actually made.
2. **429s answered** by the stand-in (target 0).
3. **peak RSS** of the worker process (the only process doing the sync) at N and at N/10: the
   ratio shows whether memory is flat in the data size; the absolute value vs the 300 MB budget.
4. **incremental Notion requests** after 10 edits (5 customers, 5 consultations).
5. **edit -> visible p95**: 30 consultations edited over 15 상담일자 while a daemon-like loop runs
   the edits sensor every 15 s and the one edits run it requests; latency from each edit to its
   value visible in Supabase, against the sensor interval plus one edited-since query.

The stand-ins run in their own process, the sync in another, so neither shares a GIL.
Run alone: ``python -m benchmarks.bench_consultation --customers 10000``.
"""

from __future__ import annotations

import json
import os
import resource
import secrets
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import httpx
import typer

from benchmarks.harness import BenchContext, Figure

if TYPE_CHECKING:
    from resources.notion import NotionResource
    from resources.postgres import PostgresResource

NAME = "consultation_backup"
# the figure is at 10,000 customers (``large``); ``make bench`` (medium) measures the same
# ratio at 2,000 so that it finishes in a few minutes on the shared machine
SCALE_CUSTOMERS = {
    "tiny": 200,
    "small": 1000,
    "demo": 1000,
    "medium": 2_000,
    "large": 10_000,
    "huge": 10_000,
}
SEED = 20261121


# -- stand-ins process ---------------------------------------------------------------------
def serve(customers: int, ports: list[int], only: str = "") -> None:
    """Serve the stand-ins (``only``: ``notion`` or ``files`` for Drive and Storage)."""
    import signal
    import threading

    from standins import google_drive, notion, supabase_storage
    from standins.base import EmulatorServer

    servers = []
    if only in ("", "notion"):
        servers.append(
            EmulatorServer(notion.create_app(SEED, customers), ports[0], "notion").start()
        )
    if only in ("", "files"):
        servers += [
            EmulatorServer(
                google_drive.create_app(SEED, customers, prerender=True), ports[1], "drive"
            ).start(),
            EmulatorServer(supabase_storage.create_app(), ports[2], "storage").start(),
        ]
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    for s in servers:
        s.stop()


# -- worker process ------------------------------------------------------------------------
def _incremental_requests(notion: NotionResource, db: PostgresResource) -> int:
    """Notion requests of what the sensor-triggered runs do after 10 edits (5 customers, 5
    consultations)."""
    from datetime import UTC, date, datetime, timedelta
    from itertools import islice

    from consultation_backup.customers import sync_customers
    from consultation_backup.records import sync_records
    from resources.environment import NOTION_CONSULTATIONS_DB_LOCAL, NOTION_CUSTOMERS_DB_LOCAL

    cust = list(
        islice(notion.iter_pages(notion.data_source_id(NOTION_CUSTOMERS_DB_LOCAL), page_size=5), 5)
    )
    cons = list(
        islice(
            notion.iter_pages(notion.data_source_id(NOTION_CONSULTATIONS_DB_LOCAL), page_size=5),
            5,
        )
    )
    edited_from = (datetime.now(UTC) - timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:00.000Z")
    for i, page in enumerate(cust + cons):
        notion.update_page(
            page.id,
            properties={"특이사항": {"rich_text": [{"text": {"content": f"벤치 편집 {i}"}}]}},
        )
    before = notion.caller.stats["requests"]
    # what the sensor-triggered runs do: the incremental customer sync and one run per
    # edited partition
    sync_customers(notion, db, NOTION_CUSTOMERS_DB_LOCAL)
    days = sorted(
        {date.fromisoformat(p.properties["상담일자"]["date"]["start"][:10]) for p in cons}
    )
    lo, hi = days[0], days[-1] + timedelta(days=1)
    # one single-run range over the edited partitions, reading only pages edited since the
    # overlap start
    sync_records(notion, db, NOTION_CONSULTATIONS_DB_LOCAL, lo, hi, edited_since=edited_from)
    return int(notion.caller.stats["requests"] - before)


SENSOR_INTERVAL_S = 15.0


def _edit_to_visible(notion, drive, storage, db, pages: int = 30, dates: int = 15) -> dict:  # noqa: ANN001
    """Edit ``pages`` consultations spread over ``dates`` 상담일자 while a daemon-like loop runs
    the edits sensor every 15 s and the one edits run it asks for; each page's latency is from
    its edit to its new value being visible in Supabase (polled every 0.2 s). The reference is
    the sensor interval plus one edited-since query, measured here."""
    import statistics
    import threading
    from collections import defaultdict

    from consultation_backup.customers import edited_since_filter
    from consultation_backup.edits import sync_edits
    from consultation_backup.sensors import _initial_cursor, edits_request
    from consultation_backup.settings import ConsultationSettings
    from consultation_backup.transform import watermark_start
    from resources.environment import NOTION_CONSULTATIONS_DB_LOCAL, NOTION_CUSTOMERS_DB_LOCAL

    settings = ConsultationSettings(
        customers_database_id=NOTION_CUSTOMERS_DB_LOCAL,
        consultations_database_id=NOTION_CONSULTATIONS_DB_LOCAL,
    )
    rows = db.fetch_all(
        "SELECT notion_page_id, consultation_date FROM public.consultation_records"
        " WHERE NOT is_deleted ORDER BY consultation_date DESC, notion_page_id"
    )
    by_day: dict = defaultdict(list)
    for r in rows:
        by_day[r["consultation_date"]].append(r["notion_page_id"])
    days = sorted(by_day, reverse=True)[:dates]
    chosen = [by_day[d][i] for i in range(pages) for d in days if i < len(by_day[d])][:pages]
    cursor = _initial_cursor()
    stop = threading.Event()
    runs: list[float] = []

    def daemon() -> None:
        nonlocal cursor
        while not stop.wait(SENSOR_INTERVAL_S):
            request, cursor, _ = edits_request(notion, settings, cursor, time.time())
            if request is None:
                continue
            cfg = request.run_config["ops"]["apply_notion_edits"]["config"]
            started = time.perf_counter()
            sync_edits(
                notion,
                drive,
                storage,
                db,
                customers_database_id=settings.customers_database_id,
                consultations_database_id=settings.consultations_database_id,
                consultations_since=cfg.get("consultations_since") or None,
                trashed_page_ids=cfg.get("trashed_page_ids") or [],
                sync_customer_edits=bool(cfg.get("customers")),
                customer_strategy="notion_wins",
                record_strategy="notion_wins",
            )
            runs.append(time.perf_counter() - started)

    loop = threading.Thread(target=daemon, daemon=True)
    loop.start()
    edited_at: dict[str, float] = {}
    for i, page_id in enumerate(chosen):
        notion.update_page(
            page_id, properties={"처방약": {"rich_text": [{"text": {"content": f"지연 {i}"}}]}}
        )
        edited_at[page_id] = time.perf_counter()
    expected = {p: f"지연 {i}" for i, p in enumerate(chosen)}
    visible_at: dict[str, float] = {}
    deadline = time.perf_counter() + 300
    while len(visible_at) < len(chosen) and time.perf_counter() < deadline:
        for r in db.fetch_all(
            "SELECT notion_page_id, prescription FROM public.consultation_records"
            " WHERE notion_page_id = ANY(%s)",
            ([p for p in chosen if p not in visible_at],),
        ):
            if r["prescription"] == expected[r["notion_page_id"]]:
                visible_at[r["notion_page_id"]] = time.perf_counter()
        time.sleep(0.2)
    stop.set()
    loop.join(timeout=120)
    latencies = sorted(visible_at[p] - edited_at[p] for p in visible_at)
    ds = notion.data_source_id(NOTION_CONSULTATIONS_DB_LOCAL)
    since = watermark_start(cursor["consultations"], 2) or cursor["consultations"]
    q0 = time.perf_counter()
    notion.query_data_source(ds, filter=edited_since_filter(since), page_size=100)
    query_s = time.perf_counter() - q0
    p95 = latencies[max(0, int(round(0.95 * len(latencies))) - 1)] if latencies else float("inf")
    return {
        "edit_pages": len(chosen),
        "edit_dates": len({d for d in days}),
        "edit_visible": len(visible_at),
        "edit_p95_s": p95,
        "edit_median_s": statistics.median(latencies) if latencies else float("inf"),
        "edit_runs": len(runs),
        "edit_reference_s": SENSOR_INTERVAL_S + query_s,
    }


def work(db_url: str, ports: list[int], key_path: str, incremental: bool) -> dict:
    from datetime import date, datetime, timedelta

    import consultation_backup.pipeline as pipeline
    from consultation_backup.customers import sync_customers
    from consultation_backup.pipeline import sync_records_and_images
    from consultation_backup.transform import SEOUL
    from resources.environment import NOTION_CONSULTATIONS_DB_LOCAL, NOTION_CUSTOMERS_DB_LOCAL
    from resources.google_drive import GoogleDriveResource
    from resources.notion import NotionResource
    from resources.postgres import PostgresResource
    from resources.supabase_storage import SupabaseStorageResource

    os.environ["SUPABASE_SERVICE_ROLE_KEY"] = "local-service-role-key"
    # as the definitions bind it: the rate limit and breaker shared through PostgreSQL
    notion = NotionResource(
        token="ntn_bench_token", base_url=f"http://127.0.0.1:{ports[0]}", shared_state_dsn=db_url
    )
    drive = GoogleDriveResource(
        service_account_json=key_path, base_url=f"http://127.0.0.1:{ports[1]}"
    )
    storage = SupabaseStorageResource(url=f"http://127.0.0.1:{ports[2]}")
    db = PostgresResource(dsn=db_url, application_name="bench-consultation")
    today = datetime.now(SEOUL).date()
    start, end = date(2025, 1, 1), today + timedelta(days=1)
    out: dict = {}
    reads_done: list[float] = []
    plain_sync_records = pipeline.sync_records

    def timed_sync_records(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        try:
            return plain_sync_records(*args, **kwargs)
        finally:
            reads_done.append(time.perf_counter())

    # where the time goes: when the Notion reads (records) ended vs when the images did
    pipeline.sync_records = timed_sync_records  # type: ignore[assignment]
    t0 = time.perf_counter()
    customers = sync_customers(notion, db, NOTION_CUSTOMERS_DB_LOCAL).totals
    out["customers_s"] = time.perf_counter() - t0
    # what the records+images step of a single-run range backfill does (images overlap the
    # Notion reads)
    window = sync_records_and_images(
        notion, drive, storage, db, NOTION_CONSULTATIONS_DB_LOCAL, start, end, workers=4
    )
    records, images = window.records.totals, window.images.totals
    out["full_s"] = time.perf_counter() - t0
    pipeline.sync_records = plain_sync_records  # type: ignore[assignment]
    out["reads_s"] = (reads_done[0] - t0) if reads_done else out["full_s"]
    out["notion_requests"] = notion.caller.stats["requests"]
    out["client_retries"] = notion.caller.stats["retries"]
    out.update(
        customers=customers.synced,
        consultations=records.synced,
        images=images.synced,
        quarantined=customers.failed + records.failed + images.failed,
    )
    if incremental:
        out["incremental_requests"] = _incremental_requests(notion, db)
        out.update(_edit_to_visible(notion, drive, storage, db))
    out["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


# -- driver --------------------------------------------------------------------------------
def _free_ports(n: int) -> list[int]:
    from standins.base import free_port

    return [free_port() for _ in range(n)]


def _fresh_db(url_base: str) -> str:
    import psycopg
    from psycopg import sql

    from resources.migrations import MIGRATION_SETS, apply_migrations
    from tooling.services import PG_ADMIN_URL

    name = f"bench_cb_{secrets.token_hex(3)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    info = psycopg.conninfo.conninfo_to_dict(PG_ADMIN_URL)
    url = psycopg.conninfo.make_conninfo(**{**info, "dbname": name})
    apply_migrations(
        url, [m for m in MIGRATION_SETS if m.target == "supabase"], log=lambda _m: None
    )
    return url


def _drop_db(url: str) -> None:
    import psycopg
    from psycopg import sql

    from tooling.services import PG_ADMIN_URL

    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def run_once(customers: int, incremental: bool, workdir: Path) -> dict:
    from standins.google_drive import write_local_service_account

    ports = _free_ports(3)
    # Notion in a process of its own, as the real service is: serving the image traffic of Drive
    # and Storage must not slow the Notion stand-in's answers (one GIL per process)
    servers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.bench_consultation",
                "--serve",
                "--only",
                only,
                "--customers",
                str(customers),
                "--ports",
                ",".join(map(str, ports)),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for only in ("notion", "files")
    ]
    db_url = _fresh_db("")
    try:
        for server in servers:
            assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        key = write_local_service_account(
            workdir / f"sa-{ports[1]}.json", token_uri=f"http://127.0.0.1:{ports[1]}/token"
        )
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.bench_consultation",
                "--worker",
                "--db",
                db_url,
                "--ports",
                ",".join(map(str, ports)),
                "--key",
                str(key),
            ]
            + (["--incremental"] if incremental else []),
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        result["rate_limited"] = httpx.get(f"http://127.0.0.1:{ports[0]}/_stats").json()[
            "rate_limited"
        ]
        return result
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=30)
        _drop_db(db_url)


def _full_backup_figures(customers: int, full: dict) -> list[Figure]:
    bound = full["notion_requests"] / 3.0
    note = (
        f"{customers} customers, {full['consultations']} consultations, "
        f"{full['images']} images backed up, "
        f"{full['quarantined']} quarantined, {full['notion_requests']} Notion requests"
    )
    return [
        Figure(
            NAME,
            "full backup wall s (customers, consultations, images)",
            full["full_s"],
            bound,
            "rate-limit bound (Notion requests / 3 per s)",
            higher_is_better=False,
            note=note,
        ),
        Figure(
            NAME,
            "Notion reads wall s (customers, then consultations while images copy)",
            full["reads_s"],
            bound,
            "rate-limit bound (Notion requests / 3 per s)",
            higher_is_better=False,
            note=(
                f"customers {full['customers_s']:.1f} s; images finished "
                f"{full['full_s'] - full['reads_s']:.1f} s after the last Notion read"
            ),
        ),
        Figure(
            NAME,
            "429s answered",
            float(full["rate_limited"]),
            0.0,
            "target 0",
            higher_is_better=False,
            note=f"client retries {full['client_retries']}",
        ),
    ]


def bench(ctx: BenchContext) -> list[Figure]:
    customers = int(ctx.extra.get("customers") or SCALE_CUSTOMERS.get(ctx.scale, 1000))
    workdir = Path(os.environ.get("TMPDIR", "/tmp"))
    if ctx.extra.get("full_only"):
        full = run_once(customers, incremental=False, workdir=workdir)
        return _full_backup_figures(customers, full)
    small = run_once(max(100, customers // 10), incremental=False, workdir=workdir)
    full = run_once(customers, incremental=True, workdir=workdir)
    return [
        *_full_backup_figures(customers, full),
        Figure(
            NAME,
            "peak RSS MB",
            full["max_rss_mb"],
            small["max_rss_mb"],
            f"peak RSS at {max(100, customers // 10)} customers",
            higher_is_better=False,
            note="ratio ~1 means memory is flat in the data size; budget 300 MB",
        ),
        Figure(
            NAME,
            "edit -> visible p95 s (30 pages over 15 dates, sensor every 15 s)",
            full["edit_p95_s"],
            full["edit_reference_s"],
            "sensor interval + one edited-since query",
            higher_is_better=False,
            note=(
                f"{full['edit_visible']}/{full['edit_pages']} pages over {full['edit_dates']} "
                f"dates visible in {full['edit_runs']} run(s); median "
                f"{full['edit_median_s']:.1f} s; target p95 <= 60 s"
            ),
        ),
        Figure(
            NAME,
            "incremental Notion requests after 10 edits",
            float(full["incremental_requests"]),
            10.0,
            "one request per edit",
            higher_is_better=False,
        ),
    ]


app = typer.Typer(add_completion=False)


@app.command()
def main(
    customers: int = typer.Option(10_000, help="customers in the stand-in dataset"),
    serve_only: bool = typer.Option(False, "--serve", help="(child) serve the stand-ins"),
    only: str = typer.Option("", help="(child) serve only notion, or files (Drive, Storage)"),
    worker: bool = typer.Option(False, help="(child) run the sync and print its figures"),
    incremental: bool = typer.Option(False, help="(child) the incremental pass"),
    ports: str = typer.Option("", help="(child) stand-in ports, comma-separated"),
    db: str = typer.Option("", help="(child) Supabase database URL"),
    key: str = typer.Option("", help="(child) Drive key file"),
    full_only: bool = typer.Option(
        False, "--full-only", help="only the full-backup figures (no RSS, edit or incremental run)"
    ),
) -> None:
    """Full backup of N customers from the stand-ins, then an incremental pass after 10 edits."""
    args = SimpleNamespace(
        customers=customers,
        serve=serve_only,
        worker=worker,
        incremental=incremental,
        ports=ports,
        db=db,
        key=key,
    )
    ports = [int(p) for p in args.ports.split(",") if p]
    if args.serve:
        serve(args.customers, ports, only)
        return
    if args.worker:
        print(json.dumps(work(args.db, ports, args.key, args.incremental)))
        return
    from resources.environment import apply_local_defaults

    apply_local_defaults()
    ctx = BenchContext(
        supabase_url="",
        gfx_source_url="",
        mysql_database="",
        scale="custom",
        extra={"customers": args.customers, "full_only": full_only},
    )
    for f in bench(ctx):
        ratio = f"{f.ratio:.2f}" if f.ratio is not None else "—"
        print(
            f"{f.metric}: {f.value:.1f} vs {f.reference_name} {f.reference}"
            f" -> ratio {ratio}  {f.note}"
        )


if __name__ == "__main__":
    app()

"""messaging benchmark: targeting + rendering 100,000 recipients from MySQL, end-to-end live runs
of 100,000 and of 1,000,000 (``--scale``) recipients against the SOLAPI stand-in through the group
flow (exactly once), with peak memory; the template has a query variable resolved for every
recipient (set-based: one SELECT per batch).

Issue 13: the 1,000,000 run takes <= 10x the 100,000 run (linear or better) with the run
process's peak memory < 500 MB. Both runs are repeated and interleaved: ``--large-rounds``
(default 3) large runs, each followed by a small one, after two small ones (S S L S L S L S; at
least ``--small-rounds`` small runs in all). The figure pairs each large run with the small runs
made just before and after it and takes the median of those ratios (``paired_ratios``); the
median of the large runs against the median of the small runs is reported beside it. Each pair
is also split into the load and the groups+close (``phase_pairs``), to show where its excess
is. One short run on this shared machine varied 18-29 s within an hour, and 20-34 s within
minutes on an otherwise idle one; within one invocation the small runs spread over 14.8-23.8 s
and the large ones over 158.5-227.8 s (2026-12-04), while linear is 9.95x (the large audience
has 9.95x the recipients). ``--large-rounds 1`` gives the quicker S S L S of earlier sessions.

Issue targets: targeting + rendering <= 5 s; end-to-end live <= 60 s; peak memory < 500 MB.
Figures are ratios against physical references measured in the same run:

1. **targeting + rendering** recipients/s vs streaming the same SELECT (the columns the message
   needs) from MariaDB through the read-only resource without doing anything with the rows (the
   MySQL read floor).
2. **end-to-end live** messages/s (render, 100k ``message_logs`` rows written pending, 10 send-many
   requests of 10,000, every row updated to sent) vs binary ``COPY`` pass-through of those same
   100k rows inside PostgreSQL (the write floor, ~100-130k rows/s on this machine).
3. **peak memory** of the process doing the live run (max RSS, plus the private memory of its
   forked sorted-run writers) vs the 500 MB budget.

Each live run happens in a child process (its max RSS is measured alone) against a stand-in of its
own in a second child process (so the two do not share a GIL, and no run meets the messages of
the runs before it). Afterwards that stand-in is asked how often it accepted each idempotency
key: any duplicate fails the benchmark.

Run alone: ``python -m benchmarks.bench_messaging [--recipients 100000]`` (creates and drops private
databases), or through the harness as ``bench(ctx)``. ``BENCH_MESSAGING_TRACE=<file>`` appends each
live run's log lines (one per batch) with the seconds since the run started.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import httpx
import psycopg
import typer
from psycopg import sql
from psycopg.types.json import Jsonb

from benchmarks.harness import BenchContext, Figure

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RECIPIENTS = 100_000

# The stand-in keeps every message it accepted (1,300,000 by the end of a run): each full garbage
# collection of its process walked all of them, pauses of 0.07 s growing to 0.6 s during the large
# run (8 s of its event loop stopped, measured with gc.callbacks), a cost the real SOLAPI does not
# put on a client. Its process freezes what it holds once a second (gc.freeze: those objects are
# never collected, and it never frees a message anyway), so a collection walks only new objects.
STANDIN = """
import gc, sys, threading, time, uvicorn
from standins.solapi import build
app, state, _ = build()
state.delivery_delay_s = 5.0
def freeze():
    while True:
        time.sleep(1.0)
        gc.freeze()
threading.Thread(target=freeze, daemon=True).start()
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""

CHILD = """
import json, os, resource, sys, time
from messaging.engine import RunOptions, execute_workflow
from resources.environment import LOCAL_DEFAULTS
from resources.mysql import MySQLResource
from resources.postgres import PostgresResource
from resources.solapi import SolapiResource
wf, key, url = sys.argv[1:4]
from messaging.engine import RunOptions

db = PostgresResource(dsn=os.environ["SUPABASE_DB_URL"])
mysql = MySQLResource(host=os.environ["MYSQL_HOST"], port=int(os.environ["MYSQL_PORT"]),
user=os.environ["MYSQL_READ_USER"],
                      password=os.environ["MYSQL_READ_PASSWORD"],
                      database=os.environ["MYSQL_DATABASE"], max_rows=2000000)
solapi = SolapiResource(api_key=LOCAL_DEFAULTS["SOLAPI_API_KEY"],
api_secret=LOCAL_DEFAULTS["SOLAPI_API_SECRET"],
                        sender=LOCAL_DEFAULTS["SOLAPI_SENDER"],
                        pf_id=LOCAL_DEFAULTS["SOLAPI_PF_ID"], base_url=url,
                        timeout_s=120)
import threading
writer_kb = [0, 0]  # the peak sampled (private kB, RSS kB) of a forked sorted-run writer
def sample_writers():
    me = os.getpid()
    while True:
        try:
            with open(f"/proc/{me}/task/{me}/children") as f:
                kids = f.read().split()
        except OSError:
            kids = []
        for kid in kids:
            private = rss = 0
            try:
                with open(f"/proc/{kid}/smaps_rollup") as f:
                    for line in f:
                        if line.startswith(("Private_Clean:", "Private_Dirty:")):
                            private += int(line.split()[1])
                        elif line.startswith("Rss:"):
                            rss = int(line.split()[1])
            except OSError:
                continue
            writer_kb[0], writer_kb[1] = max(writer_kb[0], private), max(writer_kb[1], rss)
        time.sleep(0.02)
threading.Thread(target=sample_writers, daemon=True).start()
started = time.perf_counter()
trace = os.environ.get("BENCH_MESSAGING_TRACE")  # a file: the run's log lines, timed
loaded = [None]  # seconds from the start until every recipient was logged (the load's end)
def log(m):
    if loaded[0] is None and "recipient(s) logged" in m:
        loaded[0] = time.perf_counter() - started
    if trace:
        with open(trace, "a") as f:
            f.write(f"{time.perf_counter() - started:8.2f} {m[:200]}\\n")
s = execute_workflow(db, mysql, solapi, RunOptions(wf, key, send_mode="live"), log=log)
print(json.dumps({"seconds": time.perf_counter() - started, "load_seconds": loaded[0],
                  "sent": s.success_count, "failed":
s.failed_count,
                  "targets": s.target_count, "batches": s.batches_sent, "status": s.status,
                  "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "writer_private_mb": writer_kb[0] / 1024, "writer_rss_mb": writer_kb[1] / 1024}))
"""


def _free_port() -> int:
    from standins.base import free_port

    return free_port()


FILL_CHUNK = 100_000
BENCH_TEMPLATE = (
    "[건강구독] #{name}님 (#{grade} 회원), 이번 달 정기배송 안내입니다.\n"
    "최근 결제금액: #{last_payment}원\n발송일: #{today}"
)


def _fill(conn: object, wanted: int) -> None:
    from messaging.demo import fill_crm

    with conn.cursor() as cur:  # type: ignore[attr-defined]
        cur.execute("SELECT COALESCE(MAX(id), 0) FROM customers")
        have = int(cur.fetchone()[0])
    while have < wanted:  # in chunks: the generator holds one chunk of rows at a time
        n = min(FILL_CHUNK, wanted - have)
        fill_crm(conn, n, seed=11 + have, start_id=have + 1)
        have += n


def _workflow(pg: psycopg.Connection, name: str, target: dict[str, object]) -> str:
    tid = pg.execute(
        "INSERT INTO public.message_templates (name, category, message_type, content) VALUES"
        " (%s, 'notification', 'lms', %s) RETURNING id",
        (name, BENCH_TEMPLATE),
    ).fetchone()[0]
    return str(
        pg.execute(
            "INSERT INTO public.workflows (name, trigger_type, status, target_config, "
            "message_config, variables)"
            " VALUES (%s, 'manual', 'active', %s, %s, %s) RETURNING id",
            (
                name,
                Jsonb(target),
                Jsonb({"template_id": str(tid)}),
                Jsonb(
                    {
                        "today": {"type": "function", "function": "today"},
                        "last_payment": {
                            "type": "query",
                            "template": "bench_last_payment",
                            "params": {"customer_id": "id"},
                            "column": "amount",
                            "default": "0",
                        },
                    }
                ),
            ),
        ).fetchone()[0]
    )


def _prepare(ctx: BenchContext, recipients: int, scale: int) -> tuple[str, str, str]:
    """CRM rows in MariaDB (``recipients * scale`` customers) and two notification workflows:
    the first ``recipients`` customers, and all of them. Returns (mysql db, small wf, large wf)."""
    from tooling.services import MySQLAdmin, grant_read_only

    database = ctx.mysql_database or f"bench{os.getpid()}_{secrets.token_hex(3)}_ops"
    admin = MySQLAdmin()
    with admin.connect() as conn, conn.cursor() as cur:
        cur.execute(
            f"CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4 COLLATE "
            f"utf8mb4_unicode_ci"
        )
        grant_read_only(
            cur, database, os.environ["MYSQL_READ_USER"], os.environ["MYSQL_READ_PASSWORD"]
        )
    conn = admin.connect(database)
    try:
        from messaging.demo import create_crm_tables

        create_crm_tables(conn)
        _fill(conn, recipients * scale)
    finally:
        conn.close()
    with psycopg.connect(ctx.supabase_url) as pg:
        pg.execute(
            "INSERT INTO public.variable_query_templates (template_name, description, query_sql)"
            " VALUES ('bench_last_payment', 'last paid amount', %s)"
            " ON CONFLICT (template_name) DO NOTHING",
            (
                "SELECT amount FROM payments WHERE customer_id = %(customer_id)s"
                " AND status = 'paid' ORDER BY paid_at DESC LIMIT 1",
            ),
        )
        columns = "SELECT id, name, phone, grade FROM customers"
        small = _workflow(
            pg,
            "bench-small",
            {
                "sql": f"{columns} WHERE id <= {int(recipients)}",
                "phone_column": "phone",
                "name_column": "name",
            },
        )
        large = _workflow(
            pg,
            "bench-large",
            {
                "sql": f"{columns} WHERE id <= {int(recipients * scale)}",
                "phone_column": "phone",
                "name_column": "name",
            },
        )
        pg.commit()
    return database, small, large


def _targeting(ctx: BenchContext, workflow_id: str) -> tuple[float, int, float, int]:
    """(render seconds, recipients, raw stream seconds, rows) for the same target query."""
    from messaging.catalog import iter_targets
    from messaging.planning import load_template, plan_targets, render_targets
    from messaging.progress import RunProgress
    from resources.mysql import MySQLResource
    from resources.postgres import PostgresResource

    db = PostgresResource(dsn=ctx.supabase_url, application_name="bench-messaging")
    mysql = MySQLResource(
        host=os.environ["MYSQL_HOST"],
        port=int(os.environ["MYSQL_PORT"]),
        user=os.environ["MYSQL_READ_USER"],
        password=os.environ["MYSQL_READ_PASSWORD"],
        database=os.environ["MYSQL_DATABASE"],
    )
    workflow = db.fetch_one("SELECT * FROM public.workflows WHERE id = %s", (workflow_id,))
    template = load_template(db, workflow)
    # the reference streams exactly the SELECT the targeting runs (same columns, same rows)
    plan = plan_targets(db, workflow, template)
    query = plan.query

    def raw() -> int:
        return sum(len(b) for b in iter_targets(mysql, query))

    def targeting() -> int:
        progress = RunProgress("bench", "running")
        # planning included, as the engine plans and renders in one step
        fresh = plan_targets(db, workflow, template)
        rendered = render_targets(
            db, mysql, workflow, template, fresh, None, progress, lambda _m: None
        )
        return len(rendered.messages)

    raw()  # warm the buffer pool once, so both measurements read from memory
    t0 = time.perf_counter()
    rows = raw()
    raw_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    rendered = targeting()
    render_s = time.perf_counter() - t0
    return render_s, rendered, raw_s, rows


def _copy_reference(url: str, run_id: str) -> tuple[float, int]:
    """Binary COPY pass-through of this run's message_logs rows into a scratch table."""
    with psycopg.connect(url) as src, psycopg.connect(url) as dst:
        dst.execute("CREATE TEMP TABLE copy_ref (LIKE public.message_logs)")
        t0 = time.perf_counter()
        with (
            src.cursor().copy(
                "COPY (SELECT * FROM public.message_logs WHERE workflow_run_id = %s) TO STDOUT"
                " (FORMAT binary)",
                (run_id,),
            ) as out,
            dst.cursor().copy("COPY copy_ref FROM STDIN (FORMAT binary)") as into,
        ):
            for block in out:
                into.write(block)
        seconds = time.perf_counter() - t0
        rows = dst.execute("SELECT count(*) FROM copy_ref").fetchone()[0]
    return seconds, rows


@contextmanager
def _standin(env: dict[str, str]) -> Iterator[str]:
    """A SOLAPI stand-in of its own for one live run (its URL); afterwards it must have accepted
    every idempotency key once.

    One stand-in per run, not one for the whole benchmark: it keeps every message it accepted,
    and its cost per message grows with what it holds. Shared, a small run after a large one
    cost it 1.90-2.24 CPU-seconds against 1.34-1.58 for the same 10 groups before (measured
    2026-12-04), on the two CPUs the run itself needs, and the later large runs met a stand-in
    holding up to 3.4 million messages: the real SOLAPI does not answer one client slower
    for what other runs sent."""
    port = _free_port()
    standin = subprocess.Popen([sys.executable, "-c", STANDIN, str(port)], cwd=ROOT, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/_emulator/health", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        _warm(url)
        yield url
        duplicates = httpx.get(f"{url}/_solapi/config", timeout=120).json()["duplicates"]
    finally:
        standin.terminate()
        standin.wait(timeout=30)
    if duplicates:
        raise RuntimeError(f"exactly-once violated: {duplicates} idempotency keys accepted twice")


def _warm(url: str) -> None:
    """One group of 100 messages through the endpoints a run uses, before the run is timed, so
    that whatever a fresh stand-in's first requests cost is not in the timed run: a fixed cost
    there would flatter the ratio by weighing on the short run most. (Not measured to matter:
    with 3,000-recipient runs the first two small runs took 2.0-3.0 s and the third 0.7-0.8 s
    with or without this warm-up, so that fixed cost lies elsewhere.)"""
    from resources.environment import LOCAL_DEFAULTS
    from resources.solapi import SolapiResource

    solapi = SolapiResource(
        api_key=LOCAL_DEFAULTS["SOLAPI_API_KEY"],
        api_secret=LOCAL_DEFAULTS["SOLAPI_API_SECRET"],
        sender=LOCAL_DEFAULTS["SOLAPI_SENDER"],
        pf_id=LOCAL_DEFAULTS["SOLAPI_PF_ID"],
        base_url=url,
    )
    group = solapi.create_group().group_id
    solapi.add_group_messages(
        group,
        [
            {
                "to": f"0109999{i:04d}",
                "from": LOCAL_DEFAULTS["SOLAPI_SENDER"],
                "text": "warm-up",
                "customFields": {"idempotencyKey": f"bench-warm-up:{i}"},
            }
            for i in range(100)
        ],
    )
    solapi.send_group(group)
    solapi.group_info(group)


def _live(url: str, env: dict[str, str], workflow_id: str) -> tuple[str, dict[str, object]]:
    key = f"bench:{uuid.uuid4()}"
    child = subprocess.run(
        [sys.executable, "-c", CHILD, workflow_id, key, url],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if child.returncode != 0:
        raise RuntimeError(f"live run failed: {child.stderr[-3000:]}")
    live = json.loads(child.stdout.strip().splitlines()[-1])
    if live["status"] != "completed":
        raise RuntimeError(f"live run did not complete: {live}")
    return key, live


def paired_ratios(order: list[tuple[str, float]]) -> list[tuple[float, float]]:
    """Each large run against the small runs measured next to it: (large seconds, the mean of the
    nearest small run before it and the nearest after it), in schedule order. A large run with a
    small run on one side only is compared with that one.

    Why pairs: this machine drifts by tens of percent within one invocation (2026-12-04: small
    runs of 14.8-23.8 s and large runs of 158.5-227.8 s in one schedule, the fastest pair at the
    end), and a median of the large runs against a median of the small runs compares runs made
    minutes apart; each pair compares runs made back to back.

    Raises:
        ValueError: a large run without any small run in the schedule.
    """
    pairs = []
    for i, (kind, seconds) in enumerate(order):
        if kind != "large":
            continue
        before = next((s for k, s in reversed(order[:i]) if k == "small"), None)
        after = next((s for k, s in order[i + 1 :] if k == "small"), None)
        near = [s for s in (before, after) if s is not None]
        if not near:
            raise ValueError(f"large run {i + 1} has no small run to be compared with")
        pairs.append((seconds, sum(near) / len(near)))
    return pairs


def median_pair(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    """The pair with the median ratio (the upper one of an even count)."""
    return sorted(pairs, key=lambda p: p[0] / p[1])[len(pairs) // 2]


def phase_pairs(phases: list[tuple[str, float, float]]) -> list[str]:
    """Per large run, its load (targets, variables, sort, COPY of the message rows) and the rest
    (the groups sent and the close) against the same phases of the small runs next to it, as
    ``paired_ratios`` pairs whole runs: ``phases`` holds (kind, load seconds, total seconds) in
    schedule order. Shows which phase holds a pair's excess over linear."""
    loads = paired_ratios([(kind, load) for kind, load, _total in phases])
    rests = paired_ratios([(kind, total - load) for kind, load, total in phases])
    return [
        f"load {a / b:.2f}x, groups+close {c / d:.2f}x"
        for (a, b), (c, d) in zip(loads, rests, strict=True)
    ]


def bench(ctx: BenchContext) -> list[Figure]:
    recipients = int(ctx.extra.get("recipients", DEFAULT_RECIPIENTS))
    scale = int(ctx.extra.get("scale", 10))
    small_rounds = int(ctx.extra.get("small_rounds", 3))
    large_rounds = int(ctx.extra.get("large_rounds", 3))
    from resources.environment import apply_local_defaults

    apply_local_defaults()
    database, workflow_id, large_id = _prepare(ctx, recipients, scale)
    env = {
        **os.environ,
        "SUPABASE_DB_URL": ctx.supabase_url,
        "MYSQL_DATABASE": database,
        "PYTHONPATH": str(ROOT),
    }
    saved_db = os.environ.get("MYSQL_DATABASE")
    os.environ["MYSQL_DATABASE"] = database
    try:
        render_s, rendered, raw_s, rows = _targeting(ctx, workflow_id)
    finally:
        if saved_db is None:
            os.environ.pop("MYSQL_DATABASE", None)
        else:
            os.environ["MYSQL_DATABASE"] = saved_db

    # This machine is noisy: one 100,000 run drifts by 20% within minutes, and one large run
    # measured 8.8-11.2x its reference in a single session while linear is 9.95x. So both runs
    # are repeated, interleaved (S S L S L S L S: a small run on each side of every large run),
    # and each large run is compared with its neighbours (paired_ratios). With one large run:
    # S S L S.
    larges = max(1, large_rounds) if scale > 1 else 0
    rounds = max(1, small_rounds, larges + 2 if larges > 1 else 1)
    after = max(larges, rounds // 2) if larges else 0  # small runs after a large one
    schedule = ["small"] * (rounds - after) + ["large", "small"] * larges
    schedule += ["small"] * (after - larges)
    smalls, bigs, order, phases = [], [], [], []
    for kind in schedule:
        with _standin(env) as url:
            if kind == "small":
                smalls.append(_live(url, env, workflow_id))
                run = smalls[-1][1]
            else:
                bigs.append(_live(url, env, large_id)[1])
                run = bigs[-1]
            order.append((kind, float(run["seconds"])))
            load = run["load_seconds"]  # None: the run never logged its recipients
            phases.append((kind, None if load is None else float(load), float(run["seconds"])))
    key, live = sorted(smalls, key=lambda kl: float(kl[1]["seconds"]))[len(smalls) // 2]
    live = {**live, "all_seconds": [round(float(x["seconds"]), 1) for _k, x in smalls]}
    big = None
    if bigs:
        big = sorted(bigs, key=lambda b: float(b["seconds"]))[len(bigs) // 2]
        big = {
            **big,
            "all_seconds": [round(float(b["seconds"]), 1) for b in bigs],
            # the worst one counts, with the memory of its forked sorted-run writers that is
            # their own (copied on write or allocated), sampled every 20 ms
            "maxrss_mb": max(float(b["maxrss_mb"]) for b in bigs),
            "writer_private_mb": max(float(b["writer_private_mb"]) for b in bigs),
            "writer_rss_mb": max(float(b["writer_rss_mb"]) for b in bigs),
        }
    with psycopg.connect(ctx.supabase_url) as pg:
        run_id = str(
            pg.execute(
                "SELECT id FROM public.workflow_runs WHERE execution_key = %s", (key,)
            ).fetchone()[0]
        )
    copy_s, copy_rows = _copy_reference(ctx.supabase_url, run_id)
    if not ctx.mysql_database:
        from tooling.services import MySQLAdmin

        with MySQLAdmin().connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
    figures = [
        Figure(
            "messaging",
            "targeting+rendering recipients/s",
            rendered / render_s,
            rows / raw_s,
            "raw read-only stream of the same SELECT from MariaDB",
            note=f"{rendered} recipients rendered in {render_s:.2f}s (target <= 5 s); raw stream "
            f"{raw_s:.2f}s",
        ),
        Figure(
            "messaging",
            "end-to-end live messages/s",
            live["sent"] / live["seconds"],
            copy_rows / copy_s,
            "binary COPY pass-through of the same message_logs rows",
            note=f"{live['sent']} sent + {live['failed']} failed of {live['targets']} in "
            f"{live['seconds']:.1f}s, {live['batches']} groups sent, 0 duplicates at the stand-in",
        ),
        Figure(
            "messaging",
            "peak memory MB (live run process)",
            live["maxrss_mb"],
            500.0,
            "500 MB budget",
            higher_is_better=False,
            note="max RSS of the child process that ran the live execution",
        ),
    ]
    if big is not None:
        pairs = paired_ratios(order)
        large_s, near_s = median_pair(pairs)
        # the split is a diagnostic: without every run's load time the figure stands alone
        known = all(load is not None for _k, load, _t in phases)
        split = phase_pairs(phases) if known else ["phases unknown"] * len(pairs)
        each = ", ".join(
            f"{a:.1f}/{b:.1f} = {a / b:.2f}x ({phase})"
            for (a, b), phase in zip(pairs, split, strict=True)
        )
        figures += [
            Figure(
                "messaging",
                f"end-to-end live time x{scale} recipients, paired (s)",
                large_s,
                near_s * scale,
                f"{scale} x the {recipients}-recipient runs just before and after it (linear)",
                higher_is_better=False,
                note=f"the median of the large runs, each against the mean of the small runs "
                f"next to it ({each}); schedule {' '.join(k[0].upper() for k, _s in order)}; "
                f"{big['sent']} sent + {big['failed']} failed of {big['targets']}, "
                f"{big['batches']} groups",
            ),
            Figure(
                "messaging",
                f"end-to-end live time x{scale} recipients, medians (s)",
                big["seconds"],
                live["seconds"] * scale,
                f"{scale} x the median {recipients}-recipient run in the same benchmark (linear)",
                higher_is_better=False,
                note=f"median of the large runs {big['all_seconds']} vs median of the small "
                f"runs {live['all_seconds']} (runs minutes apart: the machine's drift between "
                f"them shows here, not in the paired figure)",
            ),
            Figure(
                "messaging",
                f"peak memory MB (x{scale} live run process)",
                big["maxrss_mb"] + big["writer_private_mb"],
                500.0,
                "500 MB budget",
                higher_is_better=False,
                note=f"max RSS of the child process that ran the large live execution "
                f"({big['maxrss_mb']:.0f} MB) plus the largest private memory of one of its "
                f"forked sorted-run writers ({big['writer_private_mb']:.0f} MB, sampled every "
                f"20 ms; its RSS, pages shared with the run process included: "
                f"{big['writer_rss_mb']:.0f} MB)",
            ),
        ]
    return figures


app = typer.Typer(add_completion=False)


@app.command()
def main(
    recipients: int = typer.Option(DEFAULT_RECIPIENTS, help="recipients targeted and sent"),
    scale: int = typer.Option(10, help="the large run sends recipients x scale (1: skip it)"),
    small_rounds: int = typer.Option(
        3,
        help="runs of the small audience; each large run is compared with the ones next to it",
    ),
    large_rounds: int = typer.Option(
        3,
        help="runs of the large audience, each followed by a small one; the figure is the"
        " median of their ratios to the small runs next to them (at least large_rounds + 2"
        " small runs when above 1)",
    ),
    mysql_database: str = typer.Option(
        "",
        help="MariaDB database to fill (or reuse when already filled) and keep; default: a"
        " private one, dropped afterwards",
    ),
) -> None:
    """Targeting, rendering and a live send to the SOLAPI stand-in, on a private database."""
    from resources.environment import apply_local_defaults
    from resources.migrations import MIGRATION_SETS, apply_migrations
    from tooling.services import PG_ADMIN_URL

    args = SimpleNamespace(
        recipients=recipients, scale=scale, small_rounds=small_rounds, large_rounds=large_rounds
    )
    apply_local_defaults()
    prefix = f"bench{os.getpid()}_{secrets.token_hex(3)}"
    info = psycopg.conninfo.conninfo_to_dict(PG_ADMIN_URL)
    url = psycopg.conninfo.make_conninfo(**{**info, "dbname": f"{prefix}_supabase"})
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(f"{prefix}_supabase")))
    try:
        apply_migrations(
            url, [m for m in MIGRATION_SETS if m.target == "supabase"], log=lambda _m: None
        )
        ctx = BenchContext(
            url,
            "",
            mysql_database,
            "bench",
            extra={
                "recipients": args.recipients,
                "scale": args.scale,
                "small_rounds": args.small_rounds,
                "large_rounds": args.large_rounds,
            },
        )
        for f in bench(ctx):
            print(
                f"{f.metric}: {f.value:.1f} vs {f.reference:.1f} ({f.reference_name}) ratio "
                f"{f.ratio:.2f}  [{f.note}]"
            )
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(f"{prefix}_supabase")
                )
            )


if __name__ == "__main__":
    app()

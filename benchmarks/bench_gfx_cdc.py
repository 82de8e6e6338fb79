"""gfx_sync CDC benchmark: the streaming worker beside PostgreSQL's own logical replication.

Same run, same two databases, same table shape, same load generator:

1. **p99 commit-to-apply lag at a sustained rate** (default 2,000 row changes/s for
   ``GFX_CDC_BENCH_SECONDS`` s, default 20; the issue's figure is 60 s). Each row carries the
   source's ``clock_timestamp()`` when it was written; the target table has an extra column
   ``applied_at DEFAULT clock_timestamp()`` filled when the row lands. Reference: a
   ``CREATE SUBSCRIPTION`` subscriber (its apply worker fills the same default).
2. **Maximum sustained change rate**: a backlog (``GFX_CDC_BENCH_BACKLOG`` rows, default 200,000)
   is written while the consumer is stopped, then drained; rate = rows / (first -> last row
   applied), so the worker's process start-up is not counted. Reference: the subscriber, disabled
   and re-enabled the same way.

Run alone: ``python -m benchmarks.bench_gfx_cdc [--seconds 60] [--rate 2000]`` (creates and drops
private databases), or through the harness as ``bench(ctx)``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import psycopg
import typer
from psycopg import sql

from benchmarks.harness import BenchContext, Figure

ROOT = Path(__file__).resolve().parents[1]
ROWS_PER_TX = 10
MAX_RATE_ROWS_PER_TX = 100  # bigger transactions so the generator outruns the appliers
PAYLOAD = '{"hand": 1, "actions": ["bet", "call", "fold"], "메모": "올인"}'

SOURCE_DDL = """
CREATE TABLE IF NOT EXISTS public.{t} (id bigint PRIMARY KEY, committed_at timestamptz NOT NULL,
    pot numeric(14,2),
                                       payload jsonb);
"""
TARGET_DDL = """
CREATE TABLE IF NOT EXISTS public.{t} (id bigint PRIMARY KEY, committed_at timestamptz NOT NULL,
    pot numeric(14,2),
                                       payload jsonb, applied_at timestamptz DEFAULT
                                           clock_timestamp());
"""


def _exec(url: str, statement: str | sql.Composable, params=None):
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else None


def _generate(
    url: str,
    table: str,
    seconds: float,
    rate: float | None,
    start_id: int,
    rows_per_tx: int = ROWS_PER_TX,
    max_rows: int | None = None,
) -> int:
    """Write ``rows_per_tx``-row transactions at ``rate`` rows/s (None: as fast as possible).
    Returns rows."""
    stmt = sql.SQL(
        "INSERT INTO {} (id, committed_at, pot, payload) SELECT g, clock_timestamp(), g %% 1000,"
        " %s::jsonb "
        "FROM generate_series(%s::bigint, %s::bigint) g"
    ).format(sql.Identifier(table))
    written = 0
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        while (elapsed := time.perf_counter() - started) < seconds and (
            max_rows is None or written < max_rows
        ):
            if rate is not None:
                ahead = written / rate - elapsed
                if ahead > 0:
                    time.sleep(ahead)
            conn.execute(stmt, (PAYLOAD, start_id + written, start_id + written + rows_per_tx - 1))
            written += rows_per_tx
    return written


def _wait_applied(url: str, table: str, rows: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _exec(url, sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))[0][0] < rows:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{table}: not all {rows} rows applied within {timeout:.0f}s")
        time.sleep(0.2)


def _lag_stats(url: str, table: str, start_id: int) -> dict[str, float]:
    [(p50, p99, mx, first, last, n)] = _exec(
        url,
        sql.SQL(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY lag), percentile_cont(0.99) WITHIN"
            " GROUP (ORDER BY lag), "
            "max(lag), min(extract(epoch FROM committed_at)), max(extract(epoch FROM applied_at)),"
            " count(*) "
            "FROM (SELECT committed_at, applied_at, extract(epoch FROM applied_at - committed_at)"
            " * 1000 AS lag "
            "FROM {} WHERE id >= %s) s"
        ).format(sql.Identifier(table)),
        (start_id,),
    )
    return {
        "p50_ms": float(p50),
        "p99_ms": float(p99),
        "max_ms": float(mx),
        "rate": float(n) / max(float(last) - float(first), 1e-6),
        "rows": int(n),
    }


def _decode_ceiling(url: str, slot: str, publication: str, rows: int) -> float:
    """Rows/s the walsender hands any consumer: ``pg_recvlogical`` with pgoutput, its output
    read and thrown away, over a backlog of ``rows`` rows (its slot was created before the
    backlog was written). Timed from its first byte to its end, as the appliers are timed from
    their first row to their last: process start-up and connection are not counted."""
    [(endpos,)] = _exec(url, "SELECT pg_current_wal_lsn()::text")
    info = psycopg.conninfo.conninfo_to_dict(url)
    proc = subprocess.Popen(
        [
            "pg_recvlogical",
            "-d",
            psycopg.conninfo.make_conninfo(**info),
            "--slot",
            slot,
            "--start",
            "--endpos",
            endpos,
            "-o",
            "proto_version=1",
            "-o",
            f"publication_names={publication}",
            "--no-loop",
            "-f",
            "-",
        ],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    first = last = None
    while proc.stdout.read1(1 << 20):
        last = time.perf_counter()
        if first is None:
            first = last
    if proc.wait(timeout=900) != 0:
        raise RuntimeError(f"pg_recvlogical exited with {proc.returncode}")
    if first is None or last is None:
        raise RuntimeError("pg_recvlogical wrote nothing")
    return rows / max(last - first, 1e-6)


def _big_transaction(url_src: str, url_tgt: str, table: str, rows: int, start: int) -> float:
    """One ``rows``-row INSERT transaction; returns seconds from its commit to its last row
    applied."""
    _exec(
        url_src,
        sql.SQL(
            "INSERT INTO {} (id, committed_at, pot, payload) SELECT g, clock_timestamp(),"
            " g %% 1000, %s::jsonb FROM generate_series(%s::bigint, %s::bigint) g"
        ).format(sql.Identifier(table)),
        (PAYLOAD, start, start + rows - 1),
    )
    committed = time.time()
    deadline = time.monotonic() + 3600
    while True:
        [(n,)] = _exec(
            url_tgt,
            sql.SQL("SELECT count(*) FROM {} WHERE id >= %s").format(sql.Identifier(table)),
            (start,),
        )
        if n >= rows:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"big transaction of {rows} rows not applied within an hour")
        time.sleep(0.5)
    [(last,)] = _exec(
        url_tgt,
        sql.SQL("SELECT extract(epoch FROM max(applied_at)) FROM {} WHERE id >= %s").format(
            sql.Identifier(table)
        ),
        (start,),
    )
    return float(last) - committed


def _big_update(url_src: str, table: str, slot: str, rows: int, start: int) -> float:
    """One UPDATE of the ``rows`` rows from ``start`` (every row, one transaction: the issue's
    5,000,000-row case); returns seconds from its commit until the slot's confirmed position
    (moved only after the target's commit) passes it. The caller checks the target's values."""
    with psycopg.connect(url_src) as conn:
        conn.execute(
            sql.SQL("UPDATE {} SET pot = pot + 1 WHERE id >= %s AND id < %s").format(
                sql.Identifier(table)
            ),
            (start, start + rows),
        )
        conn.commit()
        committed = time.time()
        [(lsn,)] = conn.execute("SELECT pg_current_wal_lsn()::text").fetchall()
    deadline = time.monotonic() + 7200
    while True:
        [(done,)] = _exec(
            url_src,
            "SELECT confirmed_flush_lsn >= %s::pg_lsn FROM pg_replication_slots"
            " WHERE slot_name = %s",
            (lsn, slot),
        )
        if done:
            return time.time() - committed
        if time.monotonic() > deadline:
            raise RuntimeError(f"UPDATE of {rows} rows not applied within two hours")
        time.sleep(0.2)


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds a process used so far (0 when it is gone)."""
    if not pid:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _consumer_pids(source_url: str, target_url: str, slot: str, runner) -> dict[str, int | None]:
    """The processes that move the backlog: the walsender of ``slot``, and the applying side
    (the worker process and its target backend, or the native apply worker)."""
    [(walsender,)] = _exec(
        source_url, "SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (slot,)
    )
    if isinstance(runner, NativeSubscriber):
        rows = _exec(
            target_url,
            "SELECT pid FROM pg_stat_subscription WHERE subname = %s AND relid IS NULL",
            (runner.sub,),
        )
        return {"walsender": walsender, "apply worker": rows[0][0] if rows else None}
    rows = _exec(
        target_url,
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'gfx-cdc-applier'"
        " AND datname = current_database() AND backend_type = 'client backend'"
        " ORDER BY backend_start DESC LIMIT 1",
    )
    return {
        "walsender": walsender,
        "worker (python)": runner.proc.pid,
        "target backend": rows[0][0] if rows else None,
    }


class NativeSubscriber:
    """CREATE SUBSCRIPTION between the two databases (slot made first: same-cluster subscriptions
    cannot create their own slot without deadlocking on the CREATE SUBSCRIPTION transaction)."""

    def __init__(self, source_url: str, target_url: str, table: str, tag: str):
        self.source_url, self.target_url, self.table = source_url, target_url, table
        self.pub, self.sub = f"bench_native_pub_{tag}", f"bench_native_sub_{tag}"
        info = psycopg.conninfo.conninfo_to_dict(source_url)
        self.conninfo = " ".join(
            f"{k}={v}"
            for k, v in info.items()
            if k in ("host", "port", "user", "dbname", "password")
        )

    def __enter__(self):
        _exec(
            self.source_url,
            sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(
                sql.Identifier(self.pub), sql.Identifier(self.table)
            ),
        )
        _exec(
            self.source_url,
            "SELECT pg_create_logical_replication_slot(%s, 'pgoutput')",
            (self.sub,),
        )
        _exec(
            self.target_url,
            sql.SQL(
                "CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} WITH "
                "(create_slot = false, slot_name = {}, copy_data = false)"
            ).format(
                sql.Identifier(self.sub),
                sql.Literal(self.conninfo),
                sql.Identifier(self.pub),
                sql.Literal(self.sub),
            ),
        )
        deadline = time.monotonic() + 30
        while not _exec(
            self.source_url,
            "SELECT active FROM pg_replication_slots WHERE slot_name = %s",
            (self.sub,),
        )[0][0]:
            if time.monotonic() > deadline:
                raise RuntimeError("native subscriber did not start")
            time.sleep(0.1)
        return self

    def pause(self) -> None:
        _exec(
            self.target_url,
            sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(sql.Identifier(self.sub)),
        )
        deadline = time.monotonic() + 30
        while _exec(
            self.source_url,
            "SELECT active FROM pg_replication_slots WHERE slot_name = %s",
            (self.sub,),
        )[0][0]:
            if time.monotonic() > deadline:
                raise RuntimeError("native subscriber did not stop")
            time.sleep(0.1)

    def resume(self) -> None:
        _exec(
            self.target_url,
            sql.SQL("ALTER SUBSCRIPTION {} ENABLE").format(sql.Identifier(self.sub)),
        )

    def __exit__(self, *exc):
        for stmt in (
            "ALTER SUBSCRIPTION {} DISABLE",
            "ALTER SUBSCRIPTION {} SET (slot_name = NONE)",
            "DROP SUBSCRIPTION {}",
        ):
            with contextlib.suppress(psycopg.Error):
                _exec(self.target_url, sql.SQL(stmt).format(sql.Identifier(self.sub)))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                _exec(
                    self.source_url,
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                    "WHERE slot_name = %s",
                    (self.sub,),
                )
                break
            except psycopg.errors.ObjectInUse:
                time.sleep(0.2)
        _exec(
            self.source_url,
            sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(self.pub)),
        )


class CdcWorker:
    """The platform's streaming worker in a subprocess (as deployed), on its own slot."""

    def __init__(
        self,
        source_url: str,
        target_url: str,
        table: str,
        tag: str,
        copy_min_rows: int | None = None,
        code_dir: Path | None = None,
    ):
        from gfx_sync.cdc.models import CdcConfig, TableConfig

        self.source_url, self.target_url = source_url, target_url
        # the worker's code: this checkout, or another one (an earlier commit, for an A/B)
        self.code_dir = code_dir or ROOT
        # None: the worker's default; 0: the merge by COPY off (the previous apply path)
        self.copy_min_rows = copy_min_rows
        self.config = CdcConfig(
            tables=(TableConfig(table),),
            slot_name=f"bench_cdc_{tag}",
            publication=f"bench_cdc_pub_{tag}",
        )

    def __enter__(self):
        from gfx_sync.cdc.snapshot import initialize

        initialize(self.source_url, self.target_url, self.config)
        self.resume()
        deadline = time.monotonic() + 30
        while not _exec(
            self.source_url,
            "SELECT coalesce(bool_or(active), false) FROM pg_replication_slots "
            "WHERE slot_name = %s",
            (self.config.slot_name,),
        )[0][0]:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("CDC worker did not start")
            time.sleep(0.1)
        return self

    def peak_rss_mb(self) -> float:
        """Peak resident set of the running worker process (VmHWM)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def pause(self) -> None:
        self.peak_mb = max(getattr(self, "peak_mb", 0.0), self.peak_rss_mb())
        self._stop()

    def resume(self) -> None:
        env = {
            **os.environ,
            "GFX_SOURCE_DB_URL": self.source_url,
            "SUPABASE_DB_URL": self.target_url,
        }
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gfx_sync.cdc",
                "worker",
                "--no-report",
                "--slot",
                self.config.slot_name,
                "--publication",
                self.config.publication,
                "--tables",
                self.config.tables[0].name,
                *(
                    ["--copy-min-rows", str(self.copy_min_rows)]
                    if self.copy_min_rows is not None
                    else []
                ),
            ],
            cwd=self.code_dir,
            env=env,
            stdout=subprocess.DEVNULL,
            # GFX_CDC_BENCH_WORKER_LOG=<file>: the worker's log lines (appended), else dropped
            stderr=self._log_file(),
        )
        # GFX_CDC_BENCH_PROFILE=<dir>: py-spy samples each worker process (raw stacks there)
        self.spy = None
        profile_dir = os.environ.get("GFX_CDC_BENCH_PROFILE")
        if profile_dir:
            Path(profile_dir).mkdir(parents=True, exist_ok=True)
            out = Path(profile_dir) / f"{self.config.slot_name}_{time.time_ns()}.raw"
            spy = str(Path(sys.executable).parent / "py-spy")
            self.spy = subprocess.Popen(
                [
                    spy,
                    "record",
                    "-r",
                    "200",
                    "-f",
                    "raw",
                    "-o",
                    str(out),
                    "--pid",
                    str(self.proc.pid),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

    @staticmethod
    def _log_file():
        path = os.environ.get("GFX_CDC_BENCH_WORKER_LOG")
        return open(path, "ab") if path else subprocess.DEVNULL  # noqa: SIM115 - the child's

    def _stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        if self.spy is not None:
            self.spy.wait(timeout=60)  # py-spy writes its stacks when the worker exits

    def __exit__(self, *exc):
        from gfx_sync.cdc.snapshot import teardown

        self._stop()
        teardown(self.source_url, self.target_url, self.config, drop_publication=True)


def _big_phases(ctx: BenchContext, table: str, worker, rows: int, update: bool = True) -> dict:
    """One ``rows``-row INSERT transaction, then (``update``) one UPDATE of all of them, through
    the worker: seconds from each commit to applied, and the worker's peak RSS over both."""
    start = 100_000_000
    out: dict[str, dict[str, float]] = {
        "big": {
            "seconds": _big_transaction(ctx.gfx_source_url, ctx.supabase_url, table, rows, start)
        }
    }
    if update:
        out["big_update"] = {
            "seconds": _big_update(ctx.gfx_source_url, table, worker.config.slot_name, rows, start)
        }
        [(wrong,)] = _exec(
            ctx.supabase_url,
            sql.SQL("SELECT count(*) FROM {} WHERE id >= %s AND pot <> (id %% 1000) + 1").format(
                sql.Identifier(table)
            ),
            (start,),
        )
        if wrong:
            raise RuntimeError(f"{wrong} rows of the big UPDATE not applied on the target")
    out["rss"] = {"peak_mb": max(worker.peak_rss_mb(), getattr(worker, "peak_mb", 0.0))}
    return out


def bench(ctx: BenchContext) -> list[Figure]:
    seconds = float(ctx.extra.get("seconds", os.environ.get("GFX_CDC_BENCH_SECONDS", 20)))
    rate = float(ctx.extra.get("rate", os.environ.get("GFX_CDC_BENCH_RATE", 2000)))
    backlog = int(ctx.extra.get("backlog", os.environ.get("GFX_CDC_BENCH_BACKLOG", 200_000)))
    big_tx = int(ctx.extra.get("big_tx", os.environ.get("GFX_CDC_BENCH_BIG_TX", 200_000)))
    # only the worker's one-transaction phases (the 5,000,000-row INSERT and UPDATE take minutes)
    big_only = bool(ctx.extra.get("big_only"))
    tag = secrets.token_hex(3)
    ours, native = f"bench_cdc_ours_{tag}", f"bench_cdc_native_{tag}"
    for t in (ours, native):
        _exec(ctx.gfx_source_url, SOURCE_DDL.format(t=t))
        _exec(ctx.supabase_url, TARGET_DDL.format(t=t))
    results: dict[str, dict[str, dict[str, float]]] = {}
    runners = [("cdc_worker", ours, CdcWorker), ("native", native, NativeSubscriber)]
    if big_only:
        runners = runners[:1]
    for name, table, runner in runners:
        with runner(ctx.gfx_source_url, ctx.supabase_url, table, tag) as runner_obj:
            phase = {}
            if big_only:
                phase.update(_big_phases(ctx, table, runner_obj, big_tx))
                results[name] = phase
                continue
            start = 1
            n = _generate(ctx.gfx_source_url, table, seconds, rate, start)
            _wait_applied(ctx.supabase_url, table, n, timeout=seconds * 10 + 60)
            phase["sustained"] = _lag_stats(ctx.supabase_url, table, start)
            # maximum rate: a backlog written while the consumer is stopped, then drained
            runner_obj.pause()
            ceiling_slot = f"bench_ceiling_{name}_{tag}"
            if name == "cdc_worker":
                _exec(
                    ctx.gfx_source_url,
                    "SELECT pg_create_logical_replication_slot(%s, 'pgoutput')",
                    (ceiling_slot,),
                )
            start = 10_000_000
            n = _generate(
                ctx.gfx_source_url,
                table,
                3600,
                None,
                start,
                rows_per_tx=MAX_RATE_ROWS_PER_TX,
                max_rows=backlog,
            )
            if name == "cdc_worker":
                try:
                    ceiling = _decode_ceiling(
                        ctx.gfx_source_url, ceiling_slot, runner_obj.config.publication, n
                    )
                finally:
                    _exec(
                        ctx.gfx_source_url, "SELECT pg_drop_replication_slot(%s)", (ceiling_slot,)
                    )
            resumed = time.time()
            runner_obj.resume()
            _wait_applied(ctx.supabase_url, table, phase["sustained"]["rows"] + n, timeout=600)
            stats = _lag_stats(ctx.supabase_url, table, start)
            [(first, last)] = _exec(
                ctx.supabase_url,
                sql.SQL(
                    "SELECT extract(epoch FROM min(applied_at)), extract(epoch FROM"
                    " max(applied_at)) FROM {} "
                    "WHERE id >= %s"
                ).format(sql.Identifier(table)),
                (start,),
            )
            stats["rate"] = n / max(float(last) - float(first), 1e-6)
            stats["startup_s"] = float(first) - resumed
            phase["max"] = stats
            if name == "cdc_worker" and big_tx:
                phase.update(_big_phases(ctx, table, runner_obj, big_tx, update=False))
            results[name] = phase
    for t in (ours, native):
        _exec(ctx.gfx_source_url, f"DROP TABLE IF EXISTS {t}")
        _exec(ctx.supabase_url, f"DROP TABLE IF EXISTS {t}")
    if big_only:
        o = results["cdc_worker"]
        return [
            Figure(
                "gfx_cdc",
                "peak RSS MB of the worker, one-transaction phases",
                o["rss"]["peak_mb"],
                300.0,
                "the issue's 300 MB budget",
                higher_is_better=False,
                note=f"one {big_tx}-row INSERT transaction applied {o['big']['seconds']:.1f}s"
                f" after its commit, then one UPDATE of all {big_tx} rows applied"
                f" {o['big_update']['seconds']:.1f}s after its commit (both streamed in progress"
                " and spooled; every updated value checked on the target)",
            )
        ]
    o, r = results["cdc_worker"], results["native"]
    note = (
        f"{seconds:.0f}s at {rate:.0f} rows/s target ({ROWS_PER_TX} rows per transaction),"
        " insert workload"
    )
    return [
        Figure(
            "gfx_cdc",
            "p99 commit-to-apply lag ms @ sustained rate",
            o["sustained"]["p99_ms"],
            r["sustained"]["p99_ms"],
            "native logical replication (CREATE SUBSCRIPTION)",
            higher_is_better=False,
            note=note
            + f"; achieved {o['sustained']['rate']:.0f} vs {r['sustained']['rate']:.0f} rows/s; "
            f"p50 {o['sustained']['p50_ms']:.1f} vs {r['sustained']['p50_ms']:.1f} ms",
        ),
        Figure(
            "gfx_cdc",
            "max sustained change rate rows/s",
            o["max"]["rate"],
            r["max"]["rate"],
            "native logical replication (CREATE SUBSCRIPTION)",
            note=f"backlog of {backlog} rows ({MAX_RATE_ROWS_PER_TX} per transaction) written"
            f" while the consumer "
            "was stopped, then drained: rows / (first -> last row applied); consumer start-up "
            f"{o['max']['startup_s']:.2f}s vs {r['max']['startup_s']:.2f}s not counted",
        ),
        Figure(
            "gfx_cdc",
            "max sustained change rate rows/s vs decode ceiling",
            o["max"]["rate"],
            ceiling,
            "pg_recvlogical (pgoutput), output discarded, first byte -> last, same backlog",
            note="the rate the walsender hands any consumer on this machine",
        ),
        *(
            [
                Figure(
                    "gfx_cdc",
                    "peak RSS MB of the worker",
                    o["rss"]["peak_mb"],
                    300.0,
                    "the issue's 300 MB budget",
                    higher_is_better=False,
                    note=f"over every phase, including one {big_tx}-row transaction applied"
                    f" {o['big']['seconds']:.1f}s after its commit (streamed in progress and"
                    " spooled)",
                )
            ]
            if "rss" in o
            else []
        ),
    ]


def ab_max_rate(
    ctx: BenchContext, backlog: int, rounds: int, base_dir: Path | None = None
) -> list[Figure]:
    """A/B of the worker's maximum sustained rate in one run: ``old`` (the worker of the
    checkout at ``base_dir``, an earlier commit; without it this worker with the merge by COPY
    off) and ``new`` (this worker), beside native replication and the decode ceiling,
    ``rounds`` times with the order rotated each round (the machine is noisy); the figures are
    the medians. Also the CPU each side spent per row (walsender, worker, target backend /
    native apply worker), which the machine's load disturbs far less than the rates."""
    import statistics

    rates: dict[str, list[float]] = {"old": [], "new": [], "native": [], "ceiling": []}
    cpu: dict[str, dict[str, list[float]]] = {"old": {}, "new": {}, "native": {}}
    variants = ["old", "new", "native"]
    for rnd in range(rounds):
        order = variants[rnd % 3 :] + variants[: rnd % 3]
        for variant in order:
            tag = secrets.token_hex(3)
            table = f"bench_cdc_ab_{variant}_{tag}"
            _exec(ctx.gfx_source_url, SOURCE_DDL.format(t=table))
            _exec(ctx.supabase_url, TARGET_DDL.format(t=table))
            runner: CdcWorker | NativeSubscriber = (
                NativeSubscriber(ctx.gfx_source_url, ctx.supabase_url, table, tag)
                if variant == "native"
                else CdcWorker(
                    ctx.gfx_source_url,
                    ctx.supabase_url,
                    table,
                    tag,
                    copy_min_rows=0 if variant == "old" and base_dir is None else None,
                    code_dir=base_dir if variant == "old" else None,
                )
            )
            try:
                with runner as r:
                    r.pause()
                    ceiling_slot = f"bench_ab_ceiling_{tag}"
                    measure_ceiling = variant == "new"
                    if measure_ceiling:
                        _exec(
                            ctx.gfx_source_url,
                            "SELECT pg_create_logical_replication_slot(%s, 'pgoutput')",
                            (ceiling_slot,),
                        )
                    n = _generate(
                        ctx.gfx_source_url,
                        table,
                        3600,
                        None,
                        1,
                        rows_per_tx=MAX_RATE_ROWS_PER_TX,
                        max_rows=backlog,
                    )
                    if measure_ceiling and isinstance(r, CdcWorker):
                        try:
                            rates["ceiling"].append(
                                _decode_ceiling(
                                    ctx.gfx_source_url, ceiling_slot, r.config.publication, n
                                )
                            )
                        finally:
                            _exec(
                                ctx.gfx_source_url,
                                "SELECT pg_drop_replication_slot(%s)",
                                (ceiling_slot,),
                            )
                    r.resume()
                    slot = r.sub if isinstance(r, NativeSubscriber) else r.config.slot_name
                    pids: dict[str, int | None] = {}
                    deadline = time.monotonic() + 60
                    while not all(pids.values()) or not pids:
                        pids = _consumer_pids(ctx.gfx_source_url, ctx.supabase_url, slot, r)
                        if time.monotonic() > deadline:
                            break
                        time.sleep(0.02)
                    # from here: the processes run (the worker's imports and connections are
                    # behind it), so their CPU from now on is the backlog's
                    cpu0 = {who: _cpu_seconds(pid) for who, pid in pids.items()}
                    _wait_applied(ctx.supabase_url, table, n, timeout=600)
                    for who, pid in pids.items():
                        per_row = (_cpu_seconds(pid) - cpu0[who]) / n * 1e6
                        cpu[variant].setdefault(who, []).append(per_row)
                    [(first, last)] = _exec(
                        ctx.supabase_url,
                        sql.SQL(
                            "SELECT extract(epoch FROM min(applied_at)),"
                            " extract(epoch FROM max(applied_at)) FROM {}"
                        ).format(sql.Identifier(table)),
                    )
                    rates[variant].append(n / max(float(last) - float(first), 1e-6))
            finally:
                _exec(ctx.gfx_source_url, f"DROP TABLE IF EXISTS {table}")
                _exec(ctx.supabase_url, f"DROP TABLE IF EXISTS {table}")
    med = {k: statistics.median(v) for k, v in rates.items()}
    runs = "; ".join(f"{k} " + "/".join(f"{x:.0f}" for x in v) for k, v in rates.items())
    note = (
        f"{rounds} rounds, backlog {backlog} rows ({MAX_RATE_ROWS_PER_TX} per tx), medians; {runs}"
    )
    for variant, parts in cpu.items():
        shown = ", ".join(f"{who} {statistics.median(v):.1f}" for who, v in parts.items() if any(v))
        total = sum(statistics.median(v) for v in parts.values())
        print(f"CPU us per row, {variant}: {shown}; total {total:.1f}")
    old_name = f"the worker of {base_dir}" if base_dir else "the same worker with --copy-min-rows 0"
    return [
        Figure(
            "gfx_cdc_ab",
            "max rate rows/s: this worker vs old",
            med["new"],
            med["old"],
            old_name,
            note=note,
        ),
        Figure(
            "gfx_cdc_ab",
            "max rate rows/s: this worker vs native",
            med["new"],
            med["native"],
            "native logical replication (CREATE SUBSCRIPTION)",
            note=note,
        ),
        Figure(
            "gfx_cdc_ab",
            "max rate rows/s: this worker vs decode ceiling",
            med["new"],
            med["ceiling"],
            "pg_recvlogical (pgoutput), output discarded, timed first byte -> last",
            note=note,
        ),
        Figure(
            "gfx_cdc_ab",
            "max rate rows/s: old vs native",
            med["old"],
            med["native"],
            "native logical replication (CREATE SUBSCRIPTION)",
            note=note,
        ),
    ]


app = typer.Typer(add_completion=False)


@app.command()
def main(
    seconds: float = typer.Option(20, help="length of the lag measurement"),
    rate: float = typer.Option(2000, help="target change rate, rows/s"),
    backlog: int = typer.Option(200_000, help="rows in the max-rate backlog"),
    big_tx: int = typer.Option(200_000, help="rows of the one-transaction phase (issue: 5M)"),
    big_only: bool = typer.Option(
        False,
        "--big-only",
        help="only the worker's one-transaction phases: a --big-tx-row INSERT, then an UPDATE of"
        " every row of it in one transaction (the issue's 5,000,000-row case takes minutes)",
    ),
    ab_rounds: int = typer.Option(
        0, "--ab-rounds", help="only the A/B of the max rate (old/new worker, native), N rounds"
    ),
    ab_base: Path | None = typer.Option(
        None,
        "--ab-base",
        help="the A/B's 'old' worker runs from this checkout (e.g. `git archive <commit>`"
        " unpacked); default: this worker with --copy-min-rows 0",
    ),
) -> None:
    """CDC lag and maximum change rate against native logical replication, on private databases."""
    from resources.migrations import MIGRATION_SETS, apply_migrations
    from tooling.services import PG_ADMIN_URL

    args = SimpleNamespace(
        seconds=seconds, rate=rate, backlog=backlog, big_tx=big_tx, big_only=big_only
    )
    prefix = f"bench{os.getpid()}_{secrets.token_hex(3)}"
    info = psycopg.conninfo.conninfo_to_dict(PG_ADMIN_URL)
    urls = {}
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        for side in ("supabase", "gfx"):
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(f"{prefix}_{side}")))
            urls[side] = psycopg.conninfo.make_conninfo(**{**info, "dbname": f"{prefix}_{side}"})
    try:
        for target, url in (("supabase", urls["supabase"]), ("gfx_source", urls["gfx"])):
            apply_migrations(
                url, [m for m in MIGRATION_SETS if m.target == target], log=lambda _m: None
            )
        ctx = BenchContext(
            urls["supabase"],
            urls["gfx"],
            "",
            "bench",
            extra={
                "seconds": args.seconds,
                "rate": args.rate,
                "backlog": args.backlog,
                "big_tx": args.big_tx,
                "big_only": args.big_only,
            },
        )
        figures = ab_max_rate(ctx, backlog, ab_rounds, ab_base) if ab_rounds else bench(ctx)
        for f in figures:
            print(
                f"{f.metric}: {f.value:.1f} vs {f.reference:.1f} ({f.reference_name}) ratio"
                f" {f.ratio:.2f}  [{f.note}]"
            )
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            for side in ("supabase", "gfx"):
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(f"{prefix}_{side}")
                    )
                )


if __name__ == "__main__":
    app()

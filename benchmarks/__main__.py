"""``python -m benchmarks [--scale S] [--only NAME]...``: run every ``benchmarks/bench_*.py``.

Each benchmark gets fresh private databases (created, migrated, dropped), measures its path and
a physical reference in the same run, and returns figures; the table prints value, reference
and ratio. Results are also written to ``benchmarks/results/latest.md``.
"""

from __future__ import annotations

import importlib
import os
import platform
import secrets
import sys
import time
import traceback
from pathlib import Path
from types import SimpleNamespace

import psycopg
import typer
from psycopg import sql

from benchmarks.harness import BenchContext, Figure
from resources.environment import apply_local_defaults
from resources.migrations import MIGRATION_SETS, apply_migrations
from tooling.services import PG_ADMIN_URL, MySQLAdmin, grant_read_only

HERE = Path(__file__).parent


def _url(dbname: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(PG_ADMIN_URL)
    return psycopg.conninfo.make_conninfo(**{**info, "dbname": dbname})


def machine() -> str:
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} x {cpu}, {mem_gb:.0f} GiB RAM, Python {platform.python_version()}"


def fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def render(figures: list[Figure], header: str) -> str:
    lines = [
        header,
        "",
        "| benchmark | metric | value | reference | reference value | ratio | note |",
        "|---|---|---:|---|---:|---:|---|",
    ]
    for f in figures:
        ratio = f.ratio
        f = Figure(
            **{
                **f.__dict__,
                "reference_name": f.reference_name.replace("|", "\\|"),
                "note": f.note.replace("|", "\\|"),
            }
        )
        lines.append(
            f"| {f.benchmark} | {f.metric} | {fmt(f.value)} | {f.reference_name} "
            f"| {fmt(f.reference)} | "
            f"{'—' if ratio is None else f'{ratio:.2f}'} | {f.note} |"
        )
    return "\n".join(lines)


app = typer.Typer(add_completion=False)


@app.command(help=__doc__)
def run(
    scale: str = typer.Option("medium", envvar="BENCH_SCALE", help="data scale (BENCH_SCALE)"),
    only: list[str] | None = typer.Option(
        None, help="run only this benchmark (bench_<name>.py); repeatable"
    ),
) -> None:
    """Run the benchmarks; exit code 1 if any benchmark failed."""
    args = SimpleNamespace(scale=scale, only=only)
    apply_local_defaults()
    names = sorted(p.stem[len("bench_") :] for p in HERE.glob("bench_*.py"))
    if args.only:
        names = [n for n in names if n in args.only]
    prefix = f"bench_{secrets.token_hex(3)}"
    sup, gfx, ops = f"{prefix}_supabase", f"{prefix}_gfx", f"{prefix}_ops"
    admin = MySQLAdmin()
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        for name in (sup, gfx):
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with admin.connect() as my, my.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{ops}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        grant_read_only(cur, ops, os.environ["MYSQL_READ_USER"], os.environ["MYSQL_READ_PASSWORD"])
    os.environ.update(SUPABASE_DB_URL=_url(sup), GFX_SOURCE_DB_URL=_url(gfx), MYSQL_DATABASE=ops)
    figures: list[Figure] = []
    failed: list[str] = []
    try:
        for target, url in (("supabase", _url(sup)), ("gfx_source", _url(gfx))):
            apply_migrations(
                url, [m for m in MIGRATION_SETS if m.target == target], log=lambda _m: None
            )
        ctx = BenchContext(
            supabase_url=_url(sup), gfx_source_url=_url(gfx), mysql_database=ops, scale=args.scale
        )
        for name in names:
            started = time.perf_counter()
            print(f"[bench] {name} (scale {args.scale}) ...", flush=True)
            try:
                module = importlib.import_module(f"benchmarks.bench_{name}")
                got = module.bench(ctx)
                figures += got
                for f in got:
                    print(
                        f"        {f.metric}: {fmt(f.value)} vs "
                        f"{f.reference_name} {fmt(f.reference)}"
                        f" -> ratio {'—' if f.ratio is None else f'{f.ratio:.2f}'}",
                        flush=True,
                    )
            except Exception:  # noqa: BLE001 - one broken benchmark must not hide the others
                failed.append(name)
                traceback.print_exc()
            print(f"[bench] {name} done in {time.perf_counter() - started:.1f}s", flush=True)
    finally:
        from resources.postgres import close_all_pools

        close_all_pools()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            for name in (sup, gfx):
                conn.execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                    " WHERE database = %s AND NOT active",
                    (name,),
                )
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
        with admin.connect() as my, my.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{ops}`")
    header = (
        f"Benchmarks, scale `{args.scale}`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"on {machine()}."
    )
    table = render(figures, header)
    print("\n" + table)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.md").write_text(table + "\n", encoding="utf-8")
    if failed:
        print(f"\nfailed benchmarks: {', '.join(failed)}", file=sys.stderr)
        raise typer.Exit(1)


if __name__ == "__main__":
    app()

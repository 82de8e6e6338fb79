"""What every chaos path shares: private databases, the kill loop, the verdict.

A path runs its real command line in a child process, SIGKILLs it at a random moment (the
moments are drawn from a seeded generator, so a failing run can be replayed with ``--seed``),
restarts it, and repeats until it has killed it ``kills`` times; then it lets one run finish
untouched and verifies from the outside. The verdict counts rows (or messages) compared, lost,
duplicated and quarantined-with-a-reason; any loss or duplicate fails the harness.
"""

from __future__ import annotations

import os
import random
import secrets
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from resources.migrations import MIGRATION_SETS, apply_migrations
from tooling.chaos.proxy import CuttingProxy
from tooling.services import PG_ADMIN_URL, MySQLAdmin, grant_read_only

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class PathResult:
    path: str
    kills: int = 0
    faults: int = 0
    compared: int = 0
    lost: int = 0
    duplicated: int = 0
    differing: int = 0
    quarantined: int = 0
    unnamed_quarantine: int = 0
    wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.lost == 0
            and self.duplicated == 0
            and self.differing == 0
            and self.unnamed_quarantine == 0
            and self.compared > 0
        )


def _url(dbname: str, base: str = PG_ADMIN_URL) -> str:
    info = psycopg.conninfo.conninfo_to_dict(base)
    return psycopg.conninfo.make_conninfo(**{**info, "dbname": dbname})


def _via(url: str, port: int) -> str:
    info = psycopg.conninfo.conninfo_to_dict(url)
    return psycopg.conninfo.make_conninfo(**{**info, "host": "127.0.0.1", "port": str(port)})


@dataclass
class ChaosContext:
    """Private Supabase and gfx source databases (and a MariaDB schema) for one harness run."""

    seed: int
    kills: int
    log: Callable[[str], None] = print
    prefix: str = field(default_factory=lambda: f"chaos{os.getpid()}_{secrets.token_hex(3)}")
    proxies: list[CuttingProxy] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.failed_runs = 0  # runs of the last kill loop that failed with a named error
        self.supabase_url = _url(f"{self.prefix}_supabase")
        self.gfx_source_url = _url(f"{self.prefix}_gfx")
        self.mysql_database = f"{self.prefix}_ops"

    # -- databases -------------------------------------------------------------------------
    def create(self) -> None:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            for name in (f"{self.prefix}_supabase", f"{self.prefix}_gfx"):
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        admin = MySQLAdmin()
        with admin.connect() as my, my.cursor() as cur:
            cur.execute(
                f"CREATE DATABASE `{self.mysql_database}`"
                " CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
            grant_read_only(
                cur,
                self.mysql_database,
                os.environ["MYSQL_READ_USER"],
                os.environ["MYSQL_READ_PASSWORD"],
            )
        for target, url in (("supabase", self.supabase_url), ("gfx_source", self.gfx_source_url)):
            apply_migrations(
                url, [m for m in MIGRATION_SETS if m.target == target], log=lambda _m: None
            )
        os.environ.update(
            SUPABASE_DB_URL=self.supabase_url,
            GFX_SOURCE_DB_URL=self.gfx_source_url,
            MYSQL_DATABASE=self.mysql_database,
        )

    def drop(self) -> None:
        for proxy in self.proxies:
            proxy.stop()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            for name in (f"{self.prefix}_supabase", f"{self.prefix}_gfx"):
                conn.execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                    " WHERE database = %s AND NOT active",
                    (name,),
                )
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
        with MySQLAdmin().connect() as my, my.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{self.mysql_database}`")

    def proxied(self, url: str, cut_rate: float) -> tuple[str, CuttingProxy]:
        """``url`` through a proxy that cuts each connection with ``cut_rate`` per second."""
        info = psycopg.conninfo.conninfo_to_dict(url)
        proxy = CuttingProxy(
            info.get("host", "127.0.0.1"),
            int(info.get("port", 5432)),
            cut_rate=cut_rate,
            seed=self.rng.randrange(1 << 30),
        ).start()
        self.proxies.append(proxy)
        return _via(url, proxy.listen_port), proxy

    # -- the kill loop ---------------------------------------------------------------------
    def kill_loop(
        self,
        argv: Sequence[str],
        *,
        env: dict[str, str],
        kills: int,
        max_delay_s: float,
        between: Callable[[int], None] | None = None,
        log_file: Path | None = None,
    ) -> tuple[int, int]:
        """Start ``argv``, SIGKILL it after a random delay; ``kills`` times. A run that ends
        before its kill counts as completed. Under injected faults a run may fail (a cut
        connection): that is expected when it says why; a run that dies with a Python traceback
        is a crash, and more than a few crashes stop the path. Returns (kills, completed)."""
        done = completed = 0
        crashes: list[int] = []
        self.failed_runs = 0
        while done < kills:
            with tempfile.TemporaryFile() as out:
                proc = subprocess.Popen(
                    list(argv),
                    cwd=ROOT,
                    env={**os.environ, **env},
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                delay = self.rng.uniform(0.05, max_delay_s)
                try:
                    code = proc.wait(timeout=delay)
                    completed += 1
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    done += 1
                    code = None
                out.seek(0)
                text = out.read()
                if code not in (None, 0, 2):
                    if b"Traceback (most recent call last)" in text:
                        crashes.append(code)
                    else:
                        self.failed_runs += 1
                if log_file:
                    with open(log_file, "ab") as log:
                        log.write(text)
            if between is not None:
                between(done)
        if len(crashes) > max(3, kills // 5):
            raise RuntimeError(
                f"{argv[-1]}: {len(crashes)} runs crashed with a traceback (codes"
                f" {crashes[:5]}…); see {log_file}"
            )
        return done, completed


def run_to_completion(argv: Sequence[str], env: dict[str, str], attempts: int = 3) -> None:
    """After the chaos: the same command, untouched, until it exits 0 (a retry is allowed:
    a run may find the previous one's leftovers; more than ``attempts`` failures is a bug)."""
    last = None
    for _ in range(attempts):
        done = subprocess.run(
            list(argv), cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True
        )
        if done.returncode == 0:
            return
        last = done
        time.sleep(1)
    assert last is not None
    raise RuntimeError(
        f"{' '.join(argv)} failed {attempts} times after the chaos:\n{last.stdout[-2000:]}"
        f"\n{last.stderr[-2000:]}"
    )


def row_hashes(url: str, table: str, key: str, columns: Sequence[str]) -> dict[str, str]:
    """key -> md5 of the row's columns as text, computed in PostgreSQL."""
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    query = sql.SQL("SELECT {}::text, md5(row({})::text) FROM {}").format(
        sql.Identifier(key), cols, sql.Identifier(table)
    )
    with psycopg.connect(url) as conn:
        return dict(conn.execute(query).fetchall())


def compare_tables(
    source_url: str,
    target_url: str,
    table: str,
    key: str,
    columns: Sequence[str],
    quarantined: set[str],
    result: PathResult,
) -> None:
    """Row for row: lost (in the source, not in the target, not quarantined), duplicated (in
    the target but not in the source: a row resurrected or written twice under another key),
    differing (both, with other values, not quarantined)."""
    src = row_hashes(source_url, table, key, columns)
    dst = row_hashes(target_url, table, key, columns)
    result.compared += len(src)
    for k, h in src.items():
        if k in quarantined:
            continue
        if k not in dst:
            result.lost += 1
            if len(result.notes) < 10:
                result.notes.append(f"{table} {key}={k}: lost")
        elif dst[k] != h:
            result.differing += 1
            if len(result.notes) < 10:
                result.notes.append(f"{table} {key}={k}: differs")
    extra = [k for k in dst if k not in src]
    result.duplicated += len(extra)
    for k in extra[:3]:
        result.notes.append(f"{table} {key}={k}: in the target only")


def common_columns(url_a: str, url_b: str, table: str, skip: Sequence[str] = ()) -> list[str]:
    q = (
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public'"
        " AND table_name = %s ORDER BY ordinal_position"
    )
    with psycopg.connect(url_a) as a, psycopg.connect(url_b) as b:
        cols_a = [r[0] for r in a.execute(q, (table,)).fetchall()]
        cols_b = {r[0] for r in b.execute(q, (table,)).fetchall()}
    return [c for c in cols_a if c in cols_b and c not in skip]
